//! The whole native path on the sample patient: NIfTI bytes → segmentation → LRP map.

use seglrp::backend::cpu_device;
use seglrp::demo::phantom::{phantom, sample_nifti, SAMPLE_DIMS, SAMPLE_SEED};
use seglrp::engine::PrepareOptions;
use seglrp::engine::{explain, prepare, segmentation, toy_model};
use seglrp::io::nifti::read_nifti;
use seglrp::lrp::Composite;

#[test]
fn toy_model_finds_the_sample_tumour_and_explains_it_by_its_contrast() {
    let dev = cpu_device("cpu").unwrap();
    let net = toy_model(&dev);
    let vol = read_nifti(&sample_nifti()).unwrap().volume;
    let p = prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap();
    let mask = pollster::block_on(segmentation(&p)).unwrap();
    let label = phantom(SAMPLE_DIMS, SAMPLE_SEED).label;
    let both = mask.iter().zip(&label).filter(|(m, l)| **m == 1 && **l == 1).count();
    let dice = 2.0 * both as f64
        / (mask.iter().filter(|m| **m == 1).count() + label.iter().filter(|l| **l == 1).count()) as f64;
    assert!(dice > 0.7, "Dice of the planted detector on the sample: {dice}");

    // Explain a voxel the model calls tumour: the planted path reads T1 20 s and T1 15 min.
    let idx = mask.iter().zip(&label).position(|(m, l)| *m == 1 && *l == 1).unwrap();
    let [nx, ny, _] = vol.dims;
    let voxel = [idx % nx, (idx / nx) % ny, idx / (nx * ny)];
    let eps = Composite::Epsilon { epsilon: 1e-6 };
    let e = pollster::block_on(explain(&p, voxel, 1, &eps)).unwrap();
    assert_eq!(e.relevance.len(), 6 * vol.voxels());
    let shares = e.shares.expect("a tumour voxel has positive relevance");
    assert!((shares.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    assert!(shares[2] + shares[5] > 0.6, "shares {shares:?}");
    assert!(shares[2] > shares[0] && shares[2] > shares[1], "shares {shares:?}");
    assert!(e.logit > 0.0, "a voxel predicted as tumour has a positive tumour logit");

    // Bad requests are errors, not panics.
    assert!(pollster::block_on(explain(&p, [nx, 0, 0], 1, &eps)).is_err());
    assert!(pollster::block_on(explain(&p, voxel, 2, &eps)).is_err());
}

#[test]
fn a_study_without_six_sequences_is_refused() {
    let dev = cpu_device("cpu").unwrap();
    let net = toy_model(&dev);
    let mut vol = phantom([8, 8, 4], 3).volume;
    vol.channels = 3;
    vol.data.truncate(3 * 8 * 8 * 4);
    let err = prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap_err();
    assert!(err.contains("6 sequences"), "{err}");
}

/// A study padded to the network's alignment: a region map sums to its kept voxels over the
/// padded input, and what lands on the padding is reported, not lost. ZBox (EpsilonGammaBox's
/// first layer) gives the zero padding relevance; LRP-ε gives zero input none.
#[test]
fn relevance_on_the_padding_is_reported() {
    let dev = cpu_device("cpu").unwrap();
    let net = seglrp::model::weights::bundled(&dev).unwrap();
    // 45 × 43 × 13 pads to 48 × 44 × 16 for the bundled net (aligned to 4).
    let vol = phantom([45, 43, 13], 5).volume;
    let p = prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap();
    assert_eq!(p.padded, [16, 44, 48]);
    let [nx, ny, _] = vol.dims;
    // A box at the study's far corner, where the padding lies within the receptive field.
    let region: Vec<u8> =
        (0..vol.voxels()).map(|i| u8::from(i % nx >= 40 && (i / nx) % ny >= 38 && i / (nx * ny) >= 9)).collect();
    for (name, on_padding) in [("EpsilonGammaBox", true), ("Epsilon", false)] {
        let composite = seglrp::engine::composite(name, &p).unwrap();
        let e = pollster::block_on(seglrp::engine::explain_regions(&p, &[&region], Some(1), &composite, |_, _| {}))
            .unwrap()
            .remove(0);
        let kept = (e.voxels - e.left_out) as f32;
        let total = e.relevance_sum + e.padding_relevance;
        assert!((total - kept).abs() < 1e-3 * kept, "{name}: {total} on {kept} kept voxels");
        assert_eq!(e.padding_relevance.abs() > 1e-4, on_padding, "{name}: {} on the padding", e.padding_relevance);
    }
}
