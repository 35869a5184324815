//! The bundled liver model and sliding-window inference.

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::demo::phantom::cohort_patient;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{prepare, segmentation};
use seglrp::model::unet::{UNet, UNetConfig};
use seglrp::model::weights::{bundled, BUNDLED};
use seglrp::model::Graph;
use seglrp::spatial::metrics::dice;
use seglrp::spatial::sliding::{blend, segment, Patches};

#[test]
fn the_bundled_model_is_compact_and_segments_a_held_out_patient() {
    let dev = cpu_device("cpu").unwrap();
    assert!(BUNDLED.len() < 5 << 20, "bundled weights are {} bytes", BUNDLED.len());
    let net = bundled(&dev).expect("the bundled weights load");
    #[cfg(feature = "train")]
    assert_eq!(
        net.config,
        seglrp::demo::train::bundled_config(),
        "the bundled weights are of the documented architecture"
    );
    let p = cohort_patient(13);
    let windowed = pollster::block_on(segment(&net, &p.volume, Patches::new([64, 64, 32]), &dev, |_, _| {})).unwrap();
    let d = dice(&windowed, &p.label).expect("patient 13 has a tumour");
    assert!(d >= 0.8, "Dice on held-out patient 13: {d}");
    // Without norms the network is translation-equivariant: windows and one whole pass agree
    // except where windows saw zero padding instead of anatomy.
    let whole =
        pollster::block_on(segmentation(&prepare(&net, &p.volume, &dev, PrepareOptions::default()).unwrap())).unwrap();
    let agree = dice(&windowed, &whole).unwrap();
    assert!(agree >= 0.97, "sliding windows vs one pass: Dice {agree}");
    eprintln!("patient 13: Dice {d:.3} (windows), windows vs whole volume {agree:.4}");
}

#[test]
fn one_window_covering_the_volume_is_the_plain_forward_pass() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = UNetConfig { levels: 3, base_channels: 4, blocks: 1, ..UNetConfig::small() };
    let net = UNet::seeded(&cfg, 11, 0.1, &dev);
    let graph = Graph::from(&net);
    let vol = seglrp::demo::phantom::study(4, [24, 16, 8]).volume.normalised();
    let whole = pollster::block_on(blend(&graph, &vol, Patches::new([24, 16, 8]), &[], &dev, |_, _| {})).unwrap();
    let x = Tensor::<5>::from_data(TensorData::new(vol.data.clone(), [1, 6, 8, 16, 24]), &dev);
    let direct = net.forward(x).into_data().try_into_vec::<f32>().unwrap();
    let worst = whole.logits.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-5, "max |Δlogit| {worst}");
    // float16 sums: within half precision of the f32 blend where the Gaussian weights are
    // normal float16 numbers (towards a patch's corners they are subnormal, and nnU-Net's
    // quotient there keeps only a few bits).
    let centre = (0..whole.half.len()).filter(|i| {
        let (x, y, z) = (i % 24, (i / 24) % 16, (i / (24 * 16)) % 8);
        (6..18).contains(&x) && (4..12).contains(&y) && (2..6).contains(&z)
    });
    let worst = centre.map(|i| (whole.half[i] - direct[i]).abs() / direct[i].abs().max(1.0)).fold(0.0, f32::max);
    assert!(worst < 2e-3, "half precision: {worst}");
    // Patches smaller than the volume: nnU-Net's steps (3 × 3 × 3 here), and where patches
    // overlap, logits that differ from the whole pass (each patch sees zeros past its borders).
    let mut calls = 0;
    let q =
        pollster::block_on(blend(&graph, &vol, Patches::new([16, 8, 4]), &[], &dev, |_, total| calls = total)).unwrap();
    assert_eq!(calls, 2 * 3 * 3, "windows along x, y, z: 2 × 3 × 3");
    assert_eq!(q.origins[1], [8, 0, 0], "x innermost, then y, then z");
    assert!(q.logits.iter().all(|v| v.is_finite()));
    assert_ne!(q.logits, whole.logits, "windows smaller than the receptive field see zero padding: results differ");
    // A volume smaller than the patch is padded to it, centred, as nnU-Net does.
    let padded = pollster::block_on(blend(&graph, &vol, Patches::new([32, 16, 8]), &[], &dev, |_, _| {})).unwrap();
    assert_eq!(padded.pad, [4, 0, 0]);
}
