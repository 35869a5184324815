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

#[test]
fn the_blended_logit_is_what_its_relevance_explains() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = UNetConfig { levels: 3, base_channels: 4, blocks: 1, ..UNetConfig::small() };
    let net = UNet::seeded(&cfg, 5, 0.1, &dev);
    let graph = Graph::from(&net);
    let vol = seglrp::demo::phantom::study(6, [24, 16, 8]).volume.normalised();
    let explain = |patches: Patches, mirror: &[usize], voxel: [usize; 3]| {
        let blend = seglrp::engine::Blend { graph: &graph, input: &vol, patches, mirror, composite: "Epsilon" };
        pollster::block_on(seglrp::engine::explain_blended(&blend, voxel, 1, &dev, |_, _| {})).unwrap()
    };
    // One window covering the volume, no mirroring: the plain explanation of the whole volume.
    let voxel = [9, 7, 3];
    let one = explain(Patches::new([24, 16, 8]), &[], voxel);
    let p = prepare(&net, &vol, &dev, PrepareOptions::default().with_normalised(true)).unwrap();
    let comp = seglrp::engine::composite("Epsilon", &p).unwrap();
    let plain = pollster::block_on(seglrp::engine::explain(&p, voxel, 1, &comp)).unwrap();
    let worst = one.relevance.iter().zip(&plain.relevance).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let max = plain.relevance.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-5 * max, "one window vs the whole pass: {worst} of {max}");
    // Overlapping windows and mirrorings: the explained logit is the blend's, and the map
    // conserves it as the whole pass does (Epsilon with biases: the same leak).
    let patches = Patches::new([16, 8, 4]);
    let mirror = [0, 2];
    let blended = pollster::block_on(blend(&graph, &vol, patches, &mirror, &dev, |_, _| {})).unwrap();
    let e = explain(patches, &mirror, voxel);
    let n = vol.voxels();
    let want = blended.logits[n + vol.index(voxel)];
    assert!((e.logit - want).abs() <= 1e-4 * want.abs().max(1.0), "logit {} vs blend {want}", e.logit);
    assert!(e.relevance.iter().all(|v| v.is_finite()) && e.relevance.iter().any(|v| *v != 0.0));
    assert!(e.relevance != one.relevance);
}

#[test]
fn the_blended_region_map_is_the_per_voxel_loop_of_blended_maps() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = UNetConfig { levels: 3, base_channels: 4, blocks: 1, ..UNetConfig::small() };
    let net = UNet::seeded(&cfg, 8, 0.1, &dev);
    let graph = Graph::from(&net);
    let vol = seglrp::demo::phantom::study(7, [20, 16, 8]).volume.normalised();
    let mirror = [1];
    let blend = seglrp::engine::Blend {
        graph: &graph,
        input: &vol,
        patches: Patches::new([16, 8, 4]),
        mirror: &mirror,
        composite: "EpsilonPlus",
    };
    // Voxels held by one, two and four windows (x windows at 0 and 4, y at 0, 4, 8, z at 0, 2, 4).
    let voxels = [[1, 1, 1], [10, 6, 3], [18, 15, 7], [5, 9, 5], [12, 3, 2]];
    let mut region = vec![0u8; vol.voxels()];
    for v in voxels {
        region[vol.index(v)] = 1;
    }
    let m = pollster::block_on(seglrp::engine::explain_blended_region(&blend, &region, 1, &dev, |_, _| {})).unwrap();
    assert_eq!((m.voxels, m.left_out), (5, 0));
    let mut want = vec![0f64; m.relevance.len()];
    for v in voxels {
        let e = pollster::block_on(seglrp::engine::explain_blended(&blend, v, 1, &dev, |_, _| {})).unwrap();
        let total = (e.relevance_sum + e.padding_relevance) as f64;
        for (w, r) in want.iter_mut().zip(&e.relevance) {
            *w += *r as f64 / total;
        }
    }
    let max = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = m.relevance.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-4 * max, "two passes vs the per-voxel loop: {worst} of {max}");
    // Each normalised map sums to 1 over the padded input: the region's map sums to its voxels.
    let sum = m.relevance_sum + m.padding_relevance;
    assert!((sum - 5.0).abs() < 1e-3, "Σ M_A = {sum}");
}
