//! The bundled U-Net's stride-1 convolutions (its level shapes on a 128×96×40 study, and the
//! stacked-weight shapes the LRP rules run) and an nnU-Net-shaped network's (64³ patch) by
//! burn-flex (im2col + gemm) and by conv.rs's direct loops (4-lane, and AVX2+FMA where the CPU
//! has it), one thread and all threads, in GFMA/s and as a share of the core's FMA peak.
//! Prints a table; `cargo bench -p seglrp --bench conv`.
//!
//! The peak is measured, not looked up: 12 independent chains of 8-lane FMAs in registers (no
//! memory traffic) give FMA units × lanes × the clock this core runs at now.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::module::{conv3d, conv_transpose3d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::ops::conv::{self, Kernel};
use seglrp::rng::SplitMix;

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// One core's 8-lane FMA peak in GFMA/s (lane FMAs per second), or None without AVX2+FMA.
fn fma_peak() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn chains(iters: usize) -> f32 {
            use std::arch::x86_64::*;
            let mut acc = [_mm256_set1_ps(1.0); 12];
            let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, m, c);
                }
            }
            let mut lanes = [0f32; 8];
            // SAFETY: 8 lanes into 8 floats.
            unsafe {
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc.iter().fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a)))
            };
            lanes.iter().sum()
        }
        let iters = 20_000_000;
        // SAFETY: checked above.
        let secs = best(5, || assert!(unsafe { chains(iters) }.is_finite()));
        return Some((iters * 12 * 8) as f64 / secs / 1e9);
    }
    None
}

fn main() {
    let device = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(1);
    let mut random = |dims: [usize; 5]| {
        let n = dims.iter().product();
        Tensor::<5>::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), dims), &device)
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let peak = fma_peak();
    match peak {
        Some(p) => println!(
            "One core's 8-lane FMA peak (measured, 12 register chains): {p:.1} GFMA/s; with {threads} threads: {:.1}",
            p * threads as f64
        ),
        None => println!("No AVX2+FMA here: the 4-lane loop only (no peak measured)"),
    }
    let of_peak =
        |gfma: f64, t: usize| peak.map(|p| format!(", {:.0} %", 100.0 * gfma / (p * t as f64))).unwrap_or_default();
    let kernels = Kernel::available();
    let mut header = String::from("| layer shape | in → out | GFMA |");
    for t in [1, threads] {
        header += &format!(" burn-flex {t} thr |");
        for k in &kernels {
            header += &format!(" {} {t} thr |", k.name());
        }
    }
    println!("{header}");
    println!("{}", "|---".repeat(3 + 2 * (1 + kernels.len())) + "|");
    let shapes = [
        ("level 0 (encoder)", 8, 8, [40, 96, 128]),
        ("level 0 (Gamma z, z·w⁺)", 8, 16, [40, 96, 128]),
        ("level 0 (decoder)", 16, 8, [40, 96, 128]),
        ("level 1", 16, 16, [20, 48, 64]),
        ("level 2", 32, 32, [10, 24, 32]),
        // An nnU-Net 3d_fullres-shaped network's stages on a 64³ patch (benches/nnunet.rs).
        ("nnU-Net stage 0", 32, 32, [64, 64, 64]),
        ("nnU-Net stage 1", 64, 64, [32, 32, 32]),
        ("nnU-Net stage 2", 128, 128, [16, 16, 16]),
        ("nnU-Net stage 3", 256, 256, [8, 8, 8]),
        ("nnU-Net stage 4", 320, 320, [4, 4, 4]),
    ];
    for (name, ci, co, [d, h, w]) in shapes {
        let x = random([1, ci, d, h, w]);
        let wt = random([co, ci, 3, 3, 3]);
        let options = ConvOptions::new([1; 3], [1; 3], [1; 3], 1);
        let gfma = (d * h * w * ci * co * 27) as f64 / 1e9;
        let mut cells = Vec::new();
        for t in [1, threads] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            let burn =
                pool.install(|| best(3, || drop(conv3d(x.clone(), wt.clone(), None, options.clone()).into_data())));
            cells.push(format!("{:.0} ms ({:.1} GFMA/s{})", burn * 1e3, gfma / burn, of_peak(gfma / burn, t)));
            for &k in &kernels {
                let s = pool.install(|| {
                    best(3, || drop(conv::direct_with(k, x.clone(), wt.clone(), None, [(1, 1); 3]).into_data()))
                });
                cells.push(format!("{:.0} ms ({:.1} GFMA/s{})", s * 1e3, gfma / s, of_peak(gfma / s, t)));
            }
        }
        println!("| {name}, {d}×{h}×{w} | {ci} → {co} | {gfma:.2} | {} |", cells.join(" | "));
    }

    // The up-sampling transposed convs (kernel = stride = 2): burn-flex's against the matrix
    // product conv.rs runs them as (`conv::blockwise`).
    println!();
    println!(
        "| up-sampling (transposed, kernel = stride = 2) | in → out | GFMA | burn-flex {threads} thr | {} |",
        format_args!("one matrix product {threads} thr")
    );
    println!("|---|---|---|---|---|");
    let ups = [
        ("bundled level 1 → 0", 16, 8, [20, 48, 64]),
        ("bundled level 2 → 1", 32, 16, [10, 24, 32]),
        ("nnU-Net stage 1 → 0", 64, 32, [32, 32, 32]),
        ("nnU-Net stage 2 → 1", 128, 64, [16, 16, 16]),
        ("nnU-Net stage 5 → 4", 320, 320, [4, 4, 4]),
    ];
    for (name, ci, co, [d, h, w]) in ups {
        let x = random([1, ci, d, h, w]);
        let wt = random([ci, co, 2, 2, 2]);
        let options = ConvTransposeOptions::new([2; 3], [0; 3], [0; 3], [1; 3], 1);
        let gfma = (d * h * w * ci * co * 8) as f64 / 1e9;
        let burn = best(3, || drop(conv_transpose3d(x.clone(), wt.clone(), None, options.clone()).into_data()));
        let ours = best(3, || drop(conv::blockwise(x.clone(), wt.clone(), None).into_data()));
        println!(
            "| {name}, {d}×{h}×{w} | {ci} → {co} | {gfma:.2} | {:.1} ms ({:.1} GFMA/s) | {:.1} ms ({:.1} GFMA/s) |",
            burn * 1e3,
            gfma / burn,
            ours * 1e3,
            gfma / ours
        );
    }
}
