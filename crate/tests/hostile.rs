//! Hostile and meaningless input: files judged by their header before their voxels are read,
//! gzip checked to its trailers, broken geometry passed over with a note, studies whose
//! channels carry no information refused by file name, and no shares where nothing is positive.

use std::io::{self, Read, Write};

use seglrp::demo::phantom::phantom;
use seglrp::engine::{positive_shares, signed_shares};
use seglrp::io::geometry::{Affine, AffineSource};
use seglrp::io::nifti::{check_header, read_nifti, read_nifti_from, write_nifti, ImgFile, ReadError};
use seglrp::io::study::{assemble_reports, read_files, Input, StudyError, MAX_NON_FINITE_FRACTION};
use seglrp::io::volume::Volume;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A small single-channel float32 NIfTI-1 file as SegLRP writes it (vox_offset 352).
fn small() -> Vec<u8> {
    let v = phantom([6, 5, 4], 1).volume;
    write_nifti(&Volume { channels: 1, data: v.channel(0).to_vec(), ..v.clone() }, false)
}

/// An endless stream (zeros after `head`) that counts what is taken from it: stands for a
/// file of any size on disk, so that a test can see how much of it a refusal read.
struct Endless<'a> {
    head: &'a [u8],
    taken: &'a std::cell::Cell<u64>,
}

impl Read for Endless<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.taken.get() as usize;
        let n = buf.len();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.head.get(at + i).copied().unwrap_or(0);
        }
        self.taken.set(self.taken.get() + n as u64);
        Ok(n)
    }
}

fn set_dims(bytes: &mut [u8], dims: [i16; 3], datatype: i16, bitpix: i16) {
    bytes[40..42].copy_from_slice(&3i16.to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        bytes[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    bytes[70..72].copy_from_slice(&datatype.to_le_bytes());
    bytes[72..74].copy_from_slice(&bitpix.to_le_bytes());
}

#[test]
fn a_refused_file_is_read_no_further_than_its_header() {
    // The header claims 2048×2048×512 float32 voxels (8 GiB) in a "file" of 2.5 GB.
    let mut head = small();
    set_dims(&mut head, [2048, 2048, 512], 16, 32);
    let taken = std::cell::Cell::new(0);
    let err = read_nifti_from(Endless { head: &head, taken: &taken }, Some(2_500_000_000)).unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
    assert!(taken.get() <= 128 << 10, "read {} bytes to refuse", taken.get());
    // A header that fits, in a file too short for it: refused from the length, nothing read.
    let mut head = small();
    set_dims(&mut head, [512, 512, 256], 4, 16);
    let taken = std::cell::Cell::new(0);
    let err = read_nifti_from(Endless { head: &head, taken: &taken }, Some(10_000_000)).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(taken.get() <= 128 << 10, "read {} bytes to refuse", taken.get());
    // A gzip file far too small to inflate to what its header says.
    let err = check_header(&gz(&head), 50_000, None).unwrap_err().to_string();
    assert!(err.contains("cannot inflate"), "{err}");
    // And one far larger than its image could take compressed.
    let plain = small();
    let err = check_header(&gz(&plain), 200 << 20, None).unwrap_err().to_string();
    assert!(err.contains("far more than"), "{err}");
}

#[test]
fn a_file_larger_than_its_image_is_read_only_as_far_as_the_image() {
    let plain = small();
    let want = read_nifti(&plain).unwrap().volume;
    let taken = std::cell::Cell::new(0);
    let n = read_nifti_from(Endless { head: &plain, taken: &taken }, Some(2_500_000_000)).unwrap();
    assert_eq!(n.volume, want);
    // The stream is buffered by 64 KiB; nothing near the 2.5 GB is touched.
    assert!(taken.get() <= plain.len() as u64 + (64 << 10), "read {} bytes", taken.get());
    let excess = 2_500_000_000 - plain.len() as u64;
    assert!(
        n.info.notes.iter().any(|w| w.contains(&format!("{excess} bytes after the image data were ignored"))),
        "{:?}",
        n.info.notes
    );
    // The page's plan: read exactly header + image of an uncompressed file.
    let plan = check_header(&plain[..1000.min(plain.len())], 2_500_000_000, None).unwrap();
    assert_eq!(plan.read, Some(plain.len() as u64));
    assert!(!plan.gzip);
    // What the page then hands over (the planned prefix, with the file's length): the same.
    let reports = read_files(&[Input::prefix("t2.nii", &plain, 2_500_000_000)]);
    assert_eq!(reports[0].volume.as_ref(), Some(&want));
    assert!(!reports[0].info.as_ref().unwrap().notes.is_empty());
}

#[test]
fn gzip_trailers_are_verified_and_trailing_bytes_reported() {
    let plain = small();
    let want = read_nifti(&plain).unwrap().volume;
    let good = gz(&plain);
    let n = read_nifti(&good).unwrap();
    assert_eq!(n.volume, want);
    assert!(n.info.notes.is_empty(), "{:?}", n.info.notes);
    let damaged = |at: usize| {
        let mut b = good.clone();
        let len = b.len();
        b[len - at] ^= 0x5a;
        read_nifti(&b).unwrap_err().to_string()
    };
    // CRC-32 (8 bytes from the end) and ISIZE (4 bytes from the end).
    for at in [8, 4] {
        let err = damaged(at);
        assert!(err.contains("checksum") && err.contains("damaged"), "{err}");
    }
    // A flipped bit inside the deflate data: refused, in words.
    let mut mid = good.clone();
    let m = mid.len() / 2;
    mid[m] ^= 0x10;
    assert!(read_nifti(&mid).is_err());
    // Cut short: refused as truncated.
    let err = read_nifti(&good[..good.len() - 6]).unwrap_err().to_string();
    assert!(err.contains("truncated") || err.contains("ends early"), "{err}");
    // Junk after the last member: read, and reported with its size.
    let mut junk = good.clone();
    junk.extend_from_slice(b"0123456789abcdefXYZ");
    let n = read_nifti(&junk).unwrap();
    assert_eq!(n.volume, want);
    assert!(n.info.notes.iter().any(|w| w.contains("19 bytes after the end of the gzip stream")), "{:?}", n.info.notes);
    // Two members (as `cat a.gz b.gz` or pigz write): one stream, no note.
    let (a, b) = plain.split_at(500);
    let mut two = gz(a);
    two.extend(gz(b));
    let n = read_nifti(&two).unwrap();
    assert_eq!(n.volume, want);
    assert!(n.info.notes.is_empty(), "{:?}", n.info.notes);
}

fn with_geometry(edit: impl Fn(&mut Vec<u8>)) -> seglrp::io::nifti::FileInfo {
    let mut b = small();
    edit(&mut b);
    read_nifti(&b).unwrap().info
}

fn put_f32(b: &mut [u8], at: usize, v: &[f32]) {
    for (i, x) in v.iter().enumerate() {
        b[at + 4 * i..at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
}

#[test]
fn broken_geometry_falls_back_with_a_warning() {
    let code = |b: &mut Vec<u8>, q: i16, s: i16| {
        b[252..254].copy_from_slice(&q.to_le_bytes());
        b[254..256].copy_from_slice(&s.to_le_bytes());
    };
    // sform of all zeros with sform_code 1, a good qform (90° about z, offset): the qform.
    let info = with_geometry(|b| {
        code(b, 1, 1);
        put_f32(b, 280, &[0.0; 12]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        put_f32(b, 256, &[0.0, 0.0, h, 10.0, 20.0, 30.0]);
    });
    assert_eq!(info.affine_source, AffineSource::Qform);
    assert_eq!(info.orientation, "ALS");
    assert!(info.notes.iter().any(|w| w.contains("sform") && w.contains("zero voxel axis")), "{:?}", info.notes);
    // A singular sform (two equal axes) and no qform: pixdim, with two notes.
    let info = with_geometry(|b| {
        code(b, 0, 2);
        put_f32(b, 280, &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    });
    assert_eq!(info.affine_source, AffineSource::Pixdim);
    assert!(info.notes.iter().any(|w| w.contains("singular")), "{:?}", info.notes);
    assert!(info.notes.iter().any(|w| w.contains("pixdim")), "{:?}", info.notes);
    // A non-finite sform.
    let info = with_geometry(|b| {
        code(b, 0, 1);
        put_f32(b, 280, &[f32::NAN; 12]);
    });
    assert_eq!(info.affine_source, AffineSource::Pixdim);
    assert!(info.notes.iter().any(|w| w.contains("non-finite")), "{:?}", info.notes);
    // A quaternion far from unit length (b² + c² + d² = 2.4): the qform is ignored.
    let info = with_geometry(|b| {
        code(b, 1, 0);
        let v = (0.8f32).sqrt();
        put_f32(b, 256, &[v, v, v]);
    });
    assert_eq!(info.affine_source, AffineSource::Pixdim);
    assert!(info.notes.iter().any(|w| w.contains("2.4000")), "{:?}", info.notes);
    // Slightly non-unit (float32 rounding): renormalised silently, as niftilib does.
    let info = with_geometry(|b| {
        code(b, 1, 0);
        put_f32(b, 256, &[0.0, 0.0, 1.00002]);
    });
    assert_eq!(info.affine_source, AffineSource::Qform);
    assert!(info.notes.is_empty(), "{:?}", info.notes);
    assert_eq!(info.orientation, "LPS");
    assert!(Affine([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]).degenerate().is_none());
}

/// The six sequence files of a small phantom, with `edit(channel, values)` applied first.
fn study_files(edit: impl Fn(usize, &mut Vec<f32>)) -> Vec<(String, Vec<u8>)> {
    let p = phantom([10, 9, 6], 5);
    let names = ["t2", "t1_plain", "t1_20s", "t1_60s", "t1_120s", "t1_15min"];
    (0..6)
        .map(|c| {
            let mut data = p.volume.channel(c).to_vec();
            edit(c, &mut data);
            let v = Volume { channels: 1, data, ..p.volume.clone() };
            (format!("{}.nii", names[c]), write_nifti(&v, false))
        })
        .collect()
}

fn assemble(files: &[(String, Vec<u8>)]) -> Result<seglrp::io::study::Study, StudyError> {
    let inputs: Vec<Input> = files.iter().map(|(n, b)| Input::bytes(n.clone(), b)).collect();
    let mut reports = read_files(&inputs);
    assemble_reports(&mut reports, &[])
}

#[test]
fn channels_without_information_are_refused_by_file_name() {
    assert!(assemble(&study_files(|_, _| {})).is_ok());
    let refused = |edit: &dyn Fn(usize, &mut Vec<f32>), words: &[&str]| {
        let err = assemble(&study_files(edit)).unwrap_err();
        assert!(matches!(err, StudyError::Meaningless { .. }), "{err}");
        let msg = err.to_string();
        for w in words {
            assert!(msg.contains(w), "wanted '{w}' in: {msg}");
        }
    };
    refused(
        &|c, d| {
            if c == 2 {
                d.fill(f32::NAN)
            }
        },
        &["t1_20s.nii", "T1 20 s", "all its 540 voxels are NaN"],
    );
    refused(
        &|c, d| {
            if c == 0 {
                d.fill(0.0)
            }
        },
        &["t2.nii", "every voxel has the value 0"],
    );
    refused(
        &|c, d| {
            if c == 5 {
                d.fill(f32::MAX)
            }
        },
        &["t1_15min.nii", "340282350000000000000000000000000000000"],
    );
    refused(
        &|c, d| {
            if c == 1 {
                d.iter_mut().for_each(|v| *v = -1.0 - *v)
            }
        },
        &["t1_plain.nii", "body threshold"],
    );
    let over = (MAX_NON_FINITE_FRACTION * 540.0) as usize + 1;
    refused(
        &|c, d| {
            if c == 3 {
                d[..over].fill(f32::INFINITY)
            }
        },
        &["t1_60s.nii", &format!("{over} of its 540 voxels")],
    );
    // Fewer are set to 0 and counted per channel.
    let s = assemble(&study_files(|c, d| {
        if c == 4 {
            d[..54].fill(f32::NAN)
        }
    }))
    .unwrap();
    assert_eq!(s.non_finite, vec![0, 0, 0, 0, 54, 0]);
    assert!(s.volume.channel(4)[..54].iter().all(|v| *v == 0.0));
}

#[test]
fn a_nan_in_a_label_is_refused() {
    let p = phantom([10, 9, 6], 5);
    let mut files = study_files(|_, _| {});
    let mut label: Vec<f32> = p.label.iter().map(|v| *v as f32).collect();
    label[7] = f32::NAN;
    files.push(("label.nii".into(), write_nifti(&Volume { channels: 1, data: label, ..p.volume.clone() }, false)));
    let err = assemble(&files).unwrap_err();
    assert!(matches!(err, StudyError::BadLabel { .. }), "{err}");
    assert!(err.to_string().contains("1 of its voxels are NaN"), "{err}");
}

#[test]
fn no_shares_without_positive_relevance() {
    // Two channels of two voxels.
    assert_eq!(positive_shares(&[1.0, 0.0, 3.0, -1.0], 2), Some(vec![0.25, 0.75]));
    assert_eq!(positive_shares(&[0.0, -1.0, -3.0, 0.0], 2), None);
    assert_eq!(positive_shares(&[0.0; 4], 2), None);
    assert_eq!(signed_shares(&[1.0, -1.0, 0.0, 0.0], 2), None);
    assert_eq!(signed_shares(&[1.0, 1.0, 2.0, 0.0], 2), Some(vec![0.5, 0.5]));
}

#[test]
fn check_header_plans_a_pair_from_its_hdr() {
    let plain = small();
    // The same bytes as a pair: a header with magic ni1 and vox_offset 0, the data apart.
    let mut hdr = plain[..348].to_vec();
    hdr[344..348].copy_from_slice(b"ni1\0");
    hdr[108..112].copy_from_slice(&0f32.to_le_bytes());
    let data_len = (plain.len() - 352) as u64;
    let plan = check_header(&hdr, data_len, Some(ImgFile { gzip: false })).unwrap();
    assert_eq!(plan.read, Some(data_len));
    let err = check_header(&hdr, data_len - 1, Some(ImgFile { gzip: false })).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = check_header(&hdr, data_len, None).unwrap_err();
    assert!(err.to_string().contains(".img"), "{err}");
}
