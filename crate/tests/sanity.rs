//! LRP sanity checks that can fail, on a network trained here (40–60 s) on phantoms whose
//! sequence "T1 60 s" is replaced by pure noise:
//! - the noise sequence gets < 2 % of the positive relevance of tumour voxels;
//! - randomising the trained weights changes the maps (correlation < 0.5), i.e. the maps
//!   depend on what the network learned, not only on the input.

#![cfg(feature = "train")]

use seglrp::backend::cpu_device;
use seglrp::demo::train::{dice, sample, train, TrainOptions};
use seglrp::engine::PrepareOptions;
use seglrp::engine::{explain, prepare, segmentation};
use seglrp::lrp::Composite;
use seglrp::model::unet::{UNet, UNetConfig};

const NOISE: usize = 3;

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|v| *v as f64).sum::<f64>() / n, b.iter().map(|v| *v as f64).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (*x as f64 - ma, *y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn relevance_avoids_a_noise_sequence_and_depends_on_the_trained_weights() {
    let dev = cpu_device("cpu").unwrap();
    let opts = TrainOptions { noise_channel: Some(NOISE), ..TrainOptions::default() };
    let t = std::time::Instant::now();
    let net = train(&UNetConfig::small(), &opts, &dev, |s, l, _| {
        if s % 100 == 0 {
            eprintln!("step {s}: loss {l:.4}")
        }
    });
    eprintln!("trained {} steps in {:.1} s", opts.steps, t.elapsed().as_secs_f64());
    let random = UNet::seeded(&UNetConfig::small(), 4242, 0.0, &dev);
    let held_out = TrainOptions { seed: 999, ..opts.clone() };
    let composite = Composite::Epsilon { epsilon: 1e-6 };
    let (mut shares, mut correlations) = (vec![0f32; 6], Vec::new());
    for i in 0..4 {
        let (vol, label) = sample(&held_out, i);
        let d = dice(&net, &vol, &label, &dev);
        assert!(d > 0.7, "held-out phantom {i}: Dice {d}: the network did not learn the task");
        let p = prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap();
        let p_random = prepare(&random, &vol, &dev, PrepareOptions::default()).unwrap();
        let mask = pollster::block_on(segmentation(&p)).unwrap();
        let [nx, ny, _] = vol.dims;
        let hits: Vec<usize> =
            mask.iter().zip(&label).enumerate().filter(|(_, (m, l))| **m == 1 && **l == 1).map(|(i, _)| i).collect();
        for idx in hits.iter().step_by((hits.len() / 4).max(1)).take(4) {
            let voxel = [idx % nx, (idx / nx) % ny, idx / (nx * ny)];
            let e = pollster::block_on(explain(&p, voxel, 1, &composite)).unwrap();
            shares.iter_mut().zip(e.shares.as_ref().expect("positive relevance")).for_each(|(s, v)| *s += v);
            let r = pollster::block_on(explain(&p_random, voxel, 1, &composite)).unwrap();
            correlations.push(correlation(&e.relevance, &r.relevance));
        }
    }
    let n = correlations.len();
    assert!(n >= 8, "only {n} tumour voxels explained");
    shares.iter_mut().for_each(|s| *s /= n as f32);
    let mean_corr = correlations.iter().sum::<f64>() / n as f64;
    eprintln!(
        "mean positive shares over {n} tumour voxels: {shares:?}; trained vs random map correlation {mean_corr:.3}"
    );
    assert!(shares[NOISE] < 0.02, "the noise sequence got {:.1} % of the relevance", 100.0 * shares[NOISE]);
    // The informative sequences carry the rest.
    assert!(shares.iter().enumerate().filter(|(c, _)| *c != NOISE).all(|(_, s)| *s < 0.9));
    assert!(mean_corr.abs() < 0.5, "maps of the trained and a random network correlate at {mean_corr:.3}");
}
