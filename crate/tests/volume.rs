//! NIfTI reading/writing and the study path on the CPU backend.

use seglrp::nifti::{read_nifti, write_nifti, ReadError};
use seglrp::phantom::{phantom, sample_nifti, SAMPLE_DIMS};
use seglrp::volume::Volume;

#[test]
fn written_nifti_reads_back_identically_gzipped_or_not() {
    let vol = phantom([10, 8, 6], 4).volume;
    for gz in [false, true] {
        let back = read_nifti(&write_nifti(&vol, gz)).unwrap();
        assert_eq!(back, vol);
    }
}

#[test]
fn sample_is_a_six_sequence_study_with_a_tumour() {
    let p = phantom(SAMPLE_DIMS, seglrp::phantom::SAMPLE_SEED);
    assert_eq!(p.volume.channels, 6);
    let tumour = p.label.iter().filter(|l| **l == 1).count();
    assert!(tumour > 50 && tumour < p.label.len() / 10, "tumour voxels: {tumour}");
    // The hypervascular tumour is brighter than liver at T1 20 s and darker at 15 min.
    let mean = |c: usize, want: u8| {
        let ch = p.volume.channel(c);
        let v: Vec<f32> = ch.iter().zip(&p.label).filter(|(_, l)| **l == want).map(|(v, _)| *v).filter(|v| *v > 0.0).collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    assert!(mean(2, 1) > mean(2, 0) + 40.0);
    assert!(mean(5, 1) < 60.0);
    assert_eq!(read_nifti(&sample_nifti()).unwrap(), p.volume);
}

#[test]
fn scaling_and_integer_types_are_applied() {
    // 2×2×1 int16 volume, big-endian would be a second test; here slope 2, intercept -1.
    let vol = Volume { dims: [2, 2, 1], channels: 1, spacing: [1.0; 3], data: vec![1.0, 2.0, 3.0, 4.0] };
    let mut bytes = write_nifti(&vol, false);
    bytes[70..72].copy_from_slice(&4i16.to_le_bytes()); // int16
    bytes[72..74].copy_from_slice(&16i16.to_le_bytes());
    bytes[112..116].copy_from_slice(&2f32.to_le_bytes());
    bytes[116..120].copy_from_slice(&(-1f32).to_le_bytes());
    bytes.truncate(352);
    for v in [1i16, 2, 3, 4] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(read_nifti(&bytes).unwrap().data, vec![1.0, 3.0, 5.0, 7.0]);
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let good = write_nifti(&phantom([6, 6, 4], 1).volume, false);
    let truncated = &good[..good.len() - 10];
    assert!(matches!(read_nifti(truncated), Err(ReadError::Truncated { .. })));
    let mut magic = good.clone();
    magic[344..348].copy_from_slice(b"xxxx");
    assert!(matches!(read_nifti(&magic), Err(ReadError::NotNifti(_))));
    assert!(matches!(read_nifti(b"hello"), Err(ReadError::NotNifti(_))));
    let mut huge = good.clone();
    for i in 1..4 {
        huge[40 + 2 * i..42 + 2 * i].copy_from_slice(&2000i16.to_le_bytes());
    }
    assert!(matches!(read_nifti(&huge), Err(ReadError::TooLarge { .. })));
    let mut five_d = good.clone();
    five_d[40..42].copy_from_slice(&5i16.to_le_bytes());
    assert!(matches!(read_nifti(&five_d), Err(ReadError::BadDims(_))));
    let mut rgb = good;
    rgb[70..72].copy_from_slice(&128i16.to_le_bytes());
    let msg = read_nifti(&rgb).unwrap_err().to_string();
    assert!(msg.contains("colour"), "{msg}");
}

#[test]
fn padding_and_cropping_round_trip() {
    let vol = phantom([7, 5, 3], 2).volume;
    let padded = vol.padded(2);
    assert_eq!(padded.dims, [8, 6, 4]);
    assert_eq!(padded.cropped(vol.dims), vol);
}
