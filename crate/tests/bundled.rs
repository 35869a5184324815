//! The bundled liver model and sliding-window inference.

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::demo::phantom::cohort_patient;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{prepare, segmentation};
use seglrp::model::unet::{UNet, UNetConfig};
use seglrp::model::weights::{bundled, BUNDLED};
use seglrp::spatial::metrics::dice;
use seglrp::spatial::sliding::{segment, tumour_probability, Patches};

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
    let windowed =
        pollster::block_on(segment(&net, &p.volume, Patches { size: [64, 64, 32], overlap: 0.5 }, &dev, |_, _| {}))
            .unwrap();
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
    let vol = seglrp::demo::phantom::study(4, [20, 16, 8]).volume.normalised();
    let p = pollster::block_on(tumour_probability(
        &net,
        &vol,
        Patches { size: [64, 64, 64], overlap: 0.5 },
        &dev,
        |_, _| {},
    ))
    .unwrap();
    let x = Tensor::<5>::from_data(TensorData::new(vol.data.clone(), [1, 6, 8, 16, 20]), &dev);
    let direct =
        burn::tensor::activation::softmax(net.forward(x), 1).narrow(1, 1, 1).into_data().try_into_vec::<f32>().unwrap();
    let worst = p.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-5, "max |Δp| {worst}");
    // Many small windows cover every voxel, and the result stays a probability.
    let mut calls = 0;
    let q = pollster::block_on(tumour_probability(
        &net,
        &vol,
        Patches { size: [8, 8, 4], overlap: 0.5 },
        &dev,
        |_, total| calls = total,
    ))
    .unwrap();
    assert_eq!(calls, 4 * 3 * 3, "windows along x, y, z: 4 × 3 × 3");
    assert!(q.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_ne!(q, p, "windows smaller than the receptive field see zero padding: results differ");
}
