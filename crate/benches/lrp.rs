//! Native engine benchmark: forward pass, one LRP pass, and region maps two-pass vs the
//! per-voxel method of Chlebus et al. 2019, on the CPU backend and, with `--gpu` (or
//! `SEGLRP_BENCH_GPU=1`), on the GPU through burn-wgpu. Prints a table;
//! `cargo bench -p seglrp --bench lrp [-- --gpu]`. (The GPU is opt-in because a machine without
//! one may still offer a software Vulkan driver, on which the GPU rows take hours.)
//!
//! The per-voxel method costs one LRP pass per voxel of the region; it is timed on
//! `NAIVE_MEASURED` voxels and scaled to |A| (its cost is exactly linear), both as the paper runs
//! it (one pass after the other) and as this project's oracle runs it (batched), and checked
//! against the two-pass result on those voxels.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::lrp::region_map::{naive_region, region_map};
use seglrp::lrp::{explain_target, Composite, Target};
use seglrp::model::unet::{NormKind, UNet, UNetConfig};
use seglrp::rng::SplitMix;

const NAIVE_MEASURED: usize = 10;

fn host(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

/// The bounding box `[first, last]` of `voxels`.
fn bounds(voxels: &[[usize; 3]]) -> ([usize; 3], [usize; 3]) {
    let first = std::array::from_fn(|k| voxels.iter().map(|v| v[k]).min().unwrap());
    let last = std::array::from_fn(|k| voxels.iter().map(|v| v[k]).max().unwrap());
    (first, last)
}

/// A compact block of `n` voxels around the centre: the region.
fn region(n: usize, [d, h, w]: [usize; 3]) -> Vec<[usize; 3]> {
    let side = (n as f64).cbrt().ceil() as usize;
    let (c0, c1, c2) = (d / 2 - side / 2, h / 2 - side / 2, w / 2 - side / 2);
    (0..n).map(|i| [c0 + i / (side * side), c1 + (i / side) % side, c2 + i % side]).collect()
}

fn main() {
    let gpu = std::env::args().any(|a| a == "--gpu" || a == "--gpu-only")
        || std::env::var("SEGLRP_BENCH_GPU").is_ok_and(|v| v == "1");
    let mut devices = Vec::new();
    if !std::env::args().any(|a| a == "--gpu-only") {
        devices.push((format!("CPU ({})", seglrp::backend::default_cpu_backend()), cpu_device("cpu").unwrap()));
    }
    if gpu {
        match seglrp::backend::gpu_device() {
            Ok(d) => devices.push(("GPU (burn-wgpu)".to_string(), d)),
            Err(e) => println!("no GPU rows: {e}"),
        }
    }
    for (name, dev) in devices {
        bench(&name, &dev);
    }
}

fn bench(device_name: &str, dev: &Device) {
    let dev = dev.clone();
    let dims = [32usize, 64, 64];
    let mut rng = SplitMix::new(7);
    let n: usize = 6 * dims.iter().product::<usize>();
    let x = Tensor::<5>::from_data(
        TensorData::new((0..n).map(|_| rng.normal()).collect::<Vec<f32>>(), [1, 6, dims[0], dims[1], dims[2]]),
        &dev,
    );
    let nets = [
        ("small (2 levels, 8 ch)", UNetConfig::small()),
        ("bundled (3 levels, 8 ch, 2 blocks)", seglrp::model::weights::bundled(&dev).unwrap().config),
        (
            "3 levels, 16 ch, 2 blocks, BN",
            UNetConfig { levels: 3, base_channels: 16, blocks: 2, norm: NormKind::Batch, ..UNetConfig::small() },
        ),
    ];
    println!(
        "SegLRP native benchmark, {device_name}, volume 6×{}×{}×{} (channels × D × H × W), one whole-volume \
        forward pass, each LRP request on the nested windows around its voxels",
        dims[0], dims[1], dims[2]
    );
    println!();
    println!(
        "| net | composite | forward | one LRP pass | |A| | two-pass region | per-voxel, one by one | speed-up | \
        per-voxel, batched | speed-up | max|Δ| / max|M_A| (|A|={NAIVE_MEASURED}) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, cfg) in nets {
        let graph = seglrp::model::unet::graph(&UNet::seeded(&cfg, 1, 0.1, &dev));
        let (trace, t_fwd) = time(|| {
            let t = graph.trace(x.clone());
            host(t.value(graph.output).clone());
            t
        });
        for composite in [
            Composite::Epsilon { epsilon: 1e-6 },
            Composite::EpsilonGammaBox { low: vec![-4.0; 6], high: vec![4.0; 6] },
        ] {
            let name = format!("{composite:?}").split([' ', '{']).next().unwrap_or("").to_string();
            let centre = [dims[0] / 2, dims[1] / 2, dims[2] / 2];
            let (_, t_pass) =
                time(|| host(explain_target(&graph, &trace, &composite, 1, centre, Target::Logit).relevance));
            // Per-voxel method, measured on NAIVE_MEASURED voxels.
            let small = region(NAIVE_MEASURED, dims);
            let ((naive, _), t_naive) = time(|| {
                let (m, left) = naive_region(&graph, &trace, &composite, 1, &small);
                (host(m), left)
            });
            let per_voxel_batched = t_naive / NAIVE_MEASURED as f64;
            let (_, t_single) = time(|| {
                for v in &small {
                    let m = host(explain_target(&graph, &trace, &composite, 1, *v, Target::Logit).relevance);
                    std::hint::black_box(m.iter().map(|x| *x as f64).sum::<f64>());
                }
            });
            let per_voxel = t_single / NAIVE_MEASURED as f64;
            let mask_of = |vox: &[[usize; 3]]| {
                let mut m = vec![0f32; dims.iter().product()];
                for [d, h, w] in vox {
                    m[(d * dims[1] + h) * dims[2] + w] = 1.0;
                }
                Tensor::<5>::from_data(TensorData::new(m, [1, 1, dims[0], dims[1], dims[2]]), &dev)
            };
            let exact = host(region_map(&graph, &trace, &composite, 1, mask_of(&small), bounds(&small)).relevance);
            let scale = naive.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = naive.iter().zip(&exact).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            for size in [10usize, 100, 1000] {
                let voxels = region(size, dims);
                let mask = mask_of(&voxels);
                let (_, t_two) =
                    time(|| host(region_map(&graph, &trace, &composite, 1, mask, bounds(&voxels)).relevance));
                let t_seed = per_voxel * size as f64;
                let t_batched = per_voxel_batched * size as f64;
                let scaled = if size == NAIVE_MEASURED { "" } else { " (scaled)" };
                println!(
                    "| {label} | {name} | {:.2} s | {:.2} s | {size} | {:.2} s | {:.1} s{scaled} | {:.0}× | {:.1} \
                        s{scaled} | {:.0}× | {:.1e} |",
                    t_fwd,
                    t_pass,
                    t_two,
                    t_seed,
                    t_seed / t_two,
                    t_batched,
                    t_batched / t_two,
                    diff / scale
                );
            }
        }
    }
}
