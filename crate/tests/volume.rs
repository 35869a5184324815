//! NIfTI reading/writing and the study path on the CPU backend.

use seglrp::demo::phantom::{phantom, sample_nifti, SAMPLE_DIMS};
use seglrp::io::geometry::{Affine, AffineSource};
use seglrp::io::nifti::{read_nifti, read_nifti_pair, write_label, write_nifti, DataType, ReadError};
use seglrp::io::study::{assemble, read_files, Input, Role, StudyError};
use seglrp::io::volume::Volume;

fn read(bytes: &[u8]) -> Result<Volume, ReadError> {
    read_nifti(bytes).map(|n| n.volume)
}

#[test]
fn written_nifti_reads_back_identically_gzipped_or_not() {
    let vol = phantom([10, 8, 6], 4).volume;
    for gz in [false, true] {
        let back = read(&write_nifti(&vol, gz)).unwrap();
        assert_eq!(back, vol);
    }
}

#[test]
fn sample_is_a_six_sequence_study_with_a_tumour() {
    let p = phantom(SAMPLE_DIMS, seglrp::demo::phantom::SAMPLE_SEED);
    assert_eq!(p.volume.channels, 6);
    let tumour = p.label.iter().filter(|l| **l == 1).count();
    assert!(tumour > 50 && tumour < p.label.len() / 10, "tumour voxels: {tumour}");
    // The hypervascular tumour is brighter than liver at T1 20 s and darker at 15 min.
    let mean = |c: usize, want: u8| {
        let ch = p.volume.channel(c);
        let v: Vec<f32> =
            ch.iter().zip(&p.label).filter(|(_, l)| **l == want).map(|(v, _)| *v).filter(|v| *v > 0.0).collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    assert!(mean(2, 1) > mean(2, 0) + 40.0);
    assert!(mean(5, 1) < 60.0);
    assert_eq!(read(&sample_nifti()).unwrap(), p.volume);
}

#[test]
fn scaling_and_integer_types_are_applied() {
    // 2×2×1 int16 volume, big-endian would be a second test; here slope 2, intercept -1.
    let vol = Volume {
        dims: [2, 2, 1],
        channels: 1,
        spacing: [1.0; 3],
        affine: Affine::diagonal([1.0; 3]),
        data: vec![1.0, 2.0, 3.0, 4.0],
    };
    let mut bytes = write_nifti(&vol, false);
    bytes[70..72].copy_from_slice(&4i16.to_le_bytes()); // int16
    bytes[72..74].copy_from_slice(&16i16.to_le_bytes());
    bytes[112..116].copy_from_slice(&2f32.to_le_bytes());
    bytes[116..120].copy_from_slice(&(-1f32).to_le_bytes());
    bytes.truncate(352);
    for v in [1i16, 2, 3, 4] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(read(&bytes).unwrap().data, vec![1.0, 3.0, 5.0, 7.0]);
}

/// Header bytes in either byte order, for files that SegLRP itself never writes.
struct Raw {
    bytes: Vec<u8>,
    le: bool,
}

impl Raw {
    fn new(len: usize, le: bool) -> Raw {
        Raw { bytes: vec![0; len], le }
    }
    fn put<const N: usize>(&mut self, at: usize, le: [u8; N]) -> &mut Raw {
        let mut b = le;
        if !self.le {
            b.reverse();
        }
        self.bytes[at..at + N].copy_from_slice(&b);
        self
    }
    fn i16(&mut self, at: usize, v: i16) -> &mut Raw {
        self.put(at, v.to_le_bytes())
    }
    fn i32(&mut self, at: usize, v: i32) -> &mut Raw {
        self.put(at, v.to_le_bytes())
    }
    fn i64(&mut self, at: usize, v: i64) -> &mut Raw {
        self.put(at, v.to_le_bytes())
    }
    fn f32(&mut self, at: usize, v: f32) -> &mut Raw {
        self.put(at, v.to_le_bytes())
    }
    fn f64(&mut self, at: usize, v: f64) -> &mut Raw {
        self.put(at, v.to_le_bytes())
    }
    fn text(&mut self, at: usize, t: &[u8]) -> &mut Raw {
        self.bytes[at..at + t.len()].copy_from_slice(t);
        self
    }
}

/// A NIfTI-1 header for `dims` of `dtype`, data at 352 (single file) or 0 (pair).
fn nifti1(dims: &[i16], dtype: i16, bitpix: i16, le: bool, single: bool) -> Raw {
    let mut h = Raw::new(352, le);
    h.i32(0, 348).i16(40, dims.len() as i16);
    for (i, d) in dims.iter().enumerate() {
        h.i16(42 + 2 * i, *d);
    }
    for i in 0..8 {
        h.f32(76 + 4 * i, 1.0);
    }
    h.i16(70, dtype).i16(72, bitpix).f32(108, if single { 352.0 } else { 0.0 });
    h.text(344, if single { b"n+1\0" } else { b"ni1\0" });
    h
}

fn nifti2(dims: &[i64], dtype: i16, bitpix: i16, le: bool) -> Raw {
    let mut h = Raw::new(544, le);
    h.i32(0, 540).text(4, b"n+2\0\r\n\x1a\n").i16(12, dtype).i16(14, bitpix).i64(16, dims.len() as i64);
    for (i, d) in dims.iter().enumerate() {
        h.i64(24 + 8 * i, *d);
    }
    for i in 0..8 {
        h.f64(104 + 8 * i, 1.0);
    }
    h.i64(168, 544);
    h
}

fn with_data(h: &Raw, data: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = h.bytes.clone();
    for mut v in data {
        if !h.le {
            v.reverse();
        }
        out.extend(v);
    }
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn every_scalar_datatype_reads_in_both_byte_orders() {
    let stored = [0i64, 1, 2, 3, 4, 5, 6, 7];
    let cases: [(i16, i16, DataType, fn(i64) -> Vec<u8>); 10] = [
        (2, 8, DataType::Uint8, |v| vec![v as u8]),
        (256, 8, DataType::Int8, |v| vec![(-v) as i8 as u8]),
        (4, 16, DataType::Int16, |v| (-300 * v as i16).to_le_bytes().to_vec()),
        (512, 16, DataType::Uint16, |v| (9000 * v as u16).to_le_bytes().to_vec()),
        (8, 32, DataType::Int32, |v| (-100_000 * v as i32).to_le_bytes().to_vec()),
        (768, 32, DataType::Uint32, |v| (3_000_000_000u32 / 8 * v as u32).to_le_bytes().to_vec()),
        (1024, 64, DataType::Int64, |v| (-(1i64 << 40) * v).to_le_bytes().to_vec()),
        (1280, 64, DataType::Uint64, |v| ((1u64 << 50) * v as u64).to_le_bytes().to_vec()),
        (16, 32, DataType::Float32, |v| (0.25 * v as f32 - 1.0).to_le_bytes().to_vec()),
        (64, 64, DataType::Float64, |v| (1e-3 * v as f64).to_le_bytes().to_vec()),
    ];
    for (code, bits, dtype, enc) in cases {
        let mut expected: Option<Vec<f32>> = None;
        for le in [true, false] {
            let h = nifti1(&[2, 2, 2], code, bits, le, true);
            let n =
                read_nifti(&with_data(&h, stored.iter().map(|v| enc(*v)))).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
            assert_eq!(n.info.datatype, dtype);
            assert_eq!(n.info.little_endian, le);
            assert_eq!(n.volume.data.len(), 8);
            // Both byte orders give the same values, and those are the stored ones.
            match &expected {
                None => expected = Some(n.volume.data.clone()),
                Some(e) => assert_eq!(&n.volume.data, e, "{dtype:?} big-endian"),
            }
        }
        let first = expected.unwrap();
        assert_ne!(first[1], first[0], "{dtype:?} decoded to constants");
    }
    // Spot values: big-endian int16 and uint64.
    let h = nifti1(&[2, 2, 2], 4, 16, false, true);
    let v = read(&with_data(&h, stored.iter().map(|v| (-300 * *v as i16).to_le_bytes().to_vec()))).unwrap();
    assert_eq!(v.data[7], -2100.0);
    let h = nifti1(&[2, 2, 2], 1280, 64, true, true);
    let v = read(&with_data(&h, stored.iter().map(|v| ((1u64 << 50) * *v as u64).to_le_bytes().to_vec()))).unwrap();
    assert_eq!(v.data[3], 3.0 * (1u64 << 50) as f32);
}

#[test]
fn nifti2_with_scaling_sform_and_extension() {
    for le in [true, false] {
        let mut h = nifti2(&[3, 2, 1], 4, 16, le);
        // Scaling in f64, an sform, and a 16-byte extension before the data.
        h.f64(176, 0.5).f64(184, 10.0).i32(348, 1);
        for (r, row) in [[0.0, -2.0, 0.0, 5.0], [1.5, 0.0, 0.0, -3.0], [0.0, 0.0, 4.0, 1.0]].iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                h.f64(400 + 32 * r + 8 * c, *v);
            }
        }
        h.bytes[540] = 1; // extension flag
        h.bytes.extend(vec![0u8; 16]);
        h.i64(168, 560);
        let bytes = with_data(&h, (0..6i16).map(|v| v.to_le_bytes().to_vec()));
        for file in [bytes.clone(), gz(&bytes)] {
            let n = read_nifti(&file).unwrap();
            assert_eq!(n.info.format, "NIfTI-2");
            assert_eq!(n.volume.dims, [3, 2, 1]);
            assert_eq!(n.volume.data, vec![10.0, 10.5, 11.0, 11.5, 12.0, 12.5]);
            assert_eq!(n.info.affine_source, AffineSource::Sform);
            assert_eq!(n.info.affine.0[0], [0.0, -2.0, 0.0, 5.0]);
            assert_eq!(n.info.orientation, "ALS");
        }
    }
}

#[test]
fn qform_is_used_without_sform_and_pixdim_without_either() {
    let mut h = nifti1(&[2, 2, 2], 2, 8, true, true);
    // qform: 180° about z (b, c, d = 0, 0, 1), qfac −1, voxel 2 × 3 × 4 mm, offset (10, 20, 30).
    h.i16(252, 1).f32(76, -1.0).f32(80, 2.0).f32(84, 3.0).f32(88, 4.0);
    h.f32(264, 1.0).f32(268, 10.0).f32(272, 20.0).f32(276, 30.0);
    let n = read_nifti(&with_data(&h, (0..8u8).map(|v| vec![v]))).unwrap();
    assert_eq!(n.info.affine_source, AffineSource::Qform);
    let expect = [[-2.0, 0.0, 0.0, 10.0], [0.0, -3.0, 0.0, 20.0], [0.0, 0.0, -4.0, 30.0]];
    assert!(n.info.affine.max_difference(&Affine(expect)).0 < 1e-12, "{:?}", n.info.affine);
    assert_eq!(n.info.orientation, "LPI");
    // An sform (code > 0) wins over the qform.
    h.i16(254, 2).f32(280, 1.0).f32(300, 1.0).f32(320, 1.0);
    let n = read_nifti(&with_data(&h, (0..8u8).map(|v| vec![v]))).unwrap();
    assert_eq!(n.info.affine_source, AffineSource::Sform);
    assert_eq!(n.info.orientation, "RAS");
    // Neither: pixdim, origin at voxel 0.
    let h = nifti1(&[2, 2, 2], 2, 8, true, true);
    let n = read_nifti(&with_data(&h, (0..8u8).map(|v| vec![v]))).unwrap();
    assert_eq!(n.info.affine_source, AffineSource::Pixdim);
}

#[test]
fn hdr_img_pairs_are_read_together_and_refused_apart() {
    let h = nifti1(&[2, 1, 1], 16, 32, false, false);
    let img: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let n = read_nifti_pair(&h.bytes, &img).unwrap();
    assert!(n.info.pair);
    assert_eq!(n.volume.data, vec![1.5, -2.0]);
    let reports = read_files(&[Input::bytes("scan.img", &img), Input::bytes("scan.hdr", &h.bytes)]);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].volume.as_ref().unwrap().data, vec![1.5, -2.0]);
    let alone = read_files(&[Input::bytes("scan.hdr", &h.bytes)]);
    assert!(alone[0].error.as_ref().unwrap().contains(".img"), "{:?}", alone[0].error);
    let alone = read_files(&[Input::bytes("scan.img", &img)]);
    assert!(alone[0].error.as_ref().unwrap().contains(".hdr"), "{:?}", alone[0].error);
    // A pair's header read as a single file says what is missing.
    assert!(read_nifti(&h.bytes).unwrap_err().to_string().contains(".img"));
}

#[test]
fn non_finite_voxels_become_zero_and_are_counted() {
    let h = nifti1(&[2, 2, 1], 16, 32, true, true);
    let vals = [1.0f32, f32::NAN, f32::INFINITY, -4.0];
    let n = read_nifti(&with_data(&h, vals.iter().map(|v| v.to_le_bytes().to_vec()))).unwrap();
    assert_eq!(n.volume.data, vec![1.0, 0.0, 0.0, -4.0]);
    assert_eq!(n.info.non_finite, 2);
}

#[test]
fn gzip_is_checked_to_its_end_but_never_inflated_into_memory_past_the_image() {
    // A 2×2×2 uint8 image followed by 64 MiB of zeros: read (the zeros are inflated into
    // nothing to reach the trailer) with a note; with a damaged CRC, refused.
    let h = nifti1(&[2, 2, 2], 2, 8, true, true);
    let mut raw = with_data(&h, (0..8u8).map(|v| vec![v]));
    raw.resize(raw.len() + (64 << 20), 0);
    let mut bomb = gz(&raw);
    assert!(bomb.len() < 200_000);
    let n = read_nifti(&bomb).unwrap();
    assert_eq!(n.volume.data, (0..8).map(|v| v as f32).collect::<Vec<_>>());
    assert!(
        n.info.notes.iter().any(|w| w.contains(&format!("{} bytes after the image data", 64 << 20))),
        "{:?}",
        n.info.notes
    );
    let len = bomb.len();
    bomb[len - 8] ^= 0xff; // CRC32
    let err = read_nifti(&bomb).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    // More than 64 MiB after the image: refused without inflating the rest.
    raw.resize(raw.len() + (1 << 20), 0);
    let err = read_nifti(&gz(&raw)).unwrap_err().to_string();
    assert!(err.contains("goes on for more than 64 MiB"), "{err}");
    // The same bomb behind a header that asks for too much is refused before inflating.
    let mut big = nifti1(&[2048, 2048, 2048], 2, 8, true, true);
    big.i16(40, 3);
    assert!(matches!(read_nifti(&gz(&big.bytes)), Err(ReadError::TooLarge { .. })));
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let good = write_nifti(&phantom([6, 6, 4], 1).volume, false);
    assert!(read_nifti(&good).is_ok());
    let expect = |bytes: &[u8], words: &str| {
        let err = read_nifti(bytes).expect_err(words);
        assert!(err.to_string().contains(words), "wanted '{words}' in: {err}");
        err
    };
    assert!(matches!(expect(&good[..good.len() - 10], "truncated"), ReadError::Truncated { .. }));
    assert!(matches!(expect(&good[..200], "truncated"), ReadError::Truncated { what: "header", .. }));
    assert!(matches!(expect(b"hello", "NIfTI header size"), ReadError::NotNifti(_)));
    assert!(matches!(expect(&gz(b"hello world, this is not an image at all"), "NIfTI"), ReadError::NotNifti(_)));
    let mut damaged = gz(&good);
    damaged.truncate(damaged.len() / 2);
    assert!(read_nifti(&damaged).is_err());
    let mut magic = good.clone();
    magic[344..348].copy_from_slice(b"xxxx");
    expect(&magic, "Analyze");
    let edit = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    let mut huge = good.clone();
    for i in 1..4 {
        huge[40 + 2 * i..42 + 2 * i].copy_from_slice(&2000i16.to_le_bytes());
    }
    assert!(matches!(expect(&huge, "accepts"), ReadError::TooLarge { .. }));
    assert!(matches!(expect(&edit(42, &0i16.to_le_bytes()), "axis 1 has 0"), ReadError::BadDims(_)));
    assert!(matches!(expect(&edit(44, &(-5i16).to_le_bytes()), "axis 2 has -5"), ReadError::BadDims(_)));
    assert!(matches!(expect(&edit(42, &3000i16.to_le_bytes()), "axis 1 has 3000"), ReadError::BadDims(_)));
    let mut five_d = edit(40, &5i16.to_le_bytes());
    five_d[50..52].copy_from_slice(&2i16.to_le_bytes());
    assert!(matches!(expect(&five_d, "5-D"), ReadError::BadDims(_)));
    expect(&edit(40, &2i16.to_le_bytes()), "2-D");
    expect(&edit(70, &128i16.to_le_bytes()), "colour");
    expect(&edit(70, &32i16.to_le_bytes()), "complex");
    expect(&edit(70, &99i16.to_le_bytes()), "unknown voxel datatype");
    expect(&edit(108, &100f32.to_le_bytes()), "vox_offset");
    expect(&edit(108, &f32::NAN.to_le_bytes()), "vox_offset");
    let mut n2 = nifti2(&[4, 4, 4], 16, 32, true);
    expect(&n2.bytes[..300], "truncated");
    n2.i64(24, 1 << 40);
    expect(&n2.bytes, "axis 1");
}

#[test]
fn labels_and_relevance_export_with_the_study_affine() {
    let mut vol = phantom([5, 4, 3], 7).volume;
    vol.affine = Affine([[0.0, -3.0, 0.0, 12.5], [3.0, 0.0, 0.0, -7.25], [0.0, 0.0, 5.0, 40.0]]);
    let mask: Vec<u8> = (0..vol.voxels()).map(|i| u8::from(i % 3 == 0)).collect();
    let n = read_nifti(&write_label(&mask, &vol, true)).unwrap();
    assert_eq!(n.info.datatype, DataType::Uint8);
    assert_eq!(n.info.affine, vol.affine);
    assert_eq!(n.volume.data, mask.iter().map(|v| *v as f32).collect::<Vec<_>>());
    let n = read_nifti(&write_nifti(&vol, true)).unwrap();
    assert_eq!(n.info.dims, vec![5, 4, 3, 6]);
    assert_eq!(n.volume, vol);
}

fn split(vol: &Volume) -> Vec<Volume> {
    (0..vol.channels).map(|c| Volume { channels: 1, data: vol.channel(c).to_vec(), ..vol.clone() }).collect()
}

#[test]
fn six_files_make_the_same_study_as_one_4d_file() {
    let p = phantom([6, 5, 4], 3);
    let parts = split(&p.volume);
    let names = ["t2.nii.gz", "t1_plain.nii.gz", "t1_20s.nii.gz", "t1_60s.nii.gz", "t1_120s.nii.gz", "t1_15min.nii.gz"];
    let label = Volume { channels: 1, data: p.label.iter().map(|v| *v as f32).collect(), ..p.volume.clone() };
    // Given in a shuffled order; roles from the names.
    let mut list: Vec<(&str, &Volume, Role)> =
        names.iter().zip(&parts).map(|(n, v)| (*n, v, Role::guess(n, 1))).collect();
    list.reverse();
    list.push(("label.nii.gz", &label, Role::guess("label.nii.gz", 1)));
    let study = assemble(&list).unwrap();
    assert_eq!(study.volume, p.volume);
    assert_eq!(study.label.as_deref(), Some(&p.label[..]));
    assert_eq!(study.sources[2], "t1_20s.nii.gz");
    let four_d = assemble(&[("s.nii", &p.volume, Role::AllSequences)]).unwrap();
    assert_eq!(four_d.volume, p.volume);
}

#[test]
fn incomplete_studies_are_refused_by_name_and_other_grids_resampled() {
    let p = phantom([6, 5, 4], 3);
    let parts = split(&p.volume);
    let named = |i: usize| (["a", "b", "c", "d", "e", "f"][i], &parts[i], Role::Sequence(i));
    let five: Vec<_> = (0..5).map(named).collect();
    let err = assemble(&five).unwrap_err();
    assert_eq!(err, StudyError::Missing(vec!["T1 15 min"]));
    let mut dup = five.clone();
    dup.push(("g", &parts[5], Role::Sequence(1)));
    assert!(matches!(assemble(&dup).unwrap_err(), StudyError::Duplicate { .. }));
    // A sequence on another grid (its origin 2 mm off, or fewer slices) is resampled onto the
    // others' grid, and the study says so; within tolerance is the same grid.
    let mut moved = parts[5].clone();
    moved.affine.0[2][3] += 2.0;
    let small = phantom([6, 5, 3], 3).volume;
    let small = &split(&small)[5];
    for (name, other) in [("moved.nii", &moved), ("small.nii", small)] {
        let mut list = five.clone();
        list.push((name, other, Role::Sequence(5)));
        let study = assemble(&list).unwrap();
        assert_eq!((study.volume.dims, study.volume.affine), (parts[0].dims, parts[0].affine));
        assert_eq!(study.resampled.len(), 1, "{:?}", study.resampled);
        assert!(study.resampled[0].starts_with(name) && study.resampled[0].contains("onto the grid of a"));
    }
    let mut nudged = parts[5].clone();
    nudged.affine.0[0][0] += 5e-4;
    let mut list = five.clone();
    list.push(("f", &nudged, Role::Sequence(5)));
    assert!(assemble(&list).unwrap().resampled.is_empty());
    let all: Vec<_> = (0..6).map(named).collect();
    let bad_label = Volume { data: vec![2.0; parts[0].voxels()], ..parts[0].clone() };
    let mut list = all.clone();
    list.push(("liver_label.nii", &bad_label, Role::Label));
    assert!(matches!(assemble(&list).unwrap_err(), StudyError::BadLabel { .. }));
    assert!(matches!(
        assemble(&[("x.nii", &parts[0], Role::AllSequences)]).unwrap_err(),
        StudyError::WrongShape { channels: 1, .. }
    ));
    assert!(matches!(
        assemble(&[("x.nii", &p.volume, Role::Sequence(0))]).unwrap_err(),
        StudyError::WrongShape { channels: 6, .. }
    ));
}

#[test]
fn padding_and_cropping_round_trip() {
    let vol = phantom([7, 5, 3], 2).volume;
    let padded = vol.padded(2);
    assert_eq!(padded.dims, [8, 6, 4]);
    assert_eq!(padded.cropped(vol.dims), vol);
}
