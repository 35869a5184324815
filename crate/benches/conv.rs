//! The bundled U-Net's stride-1 convolutions (its level shapes on a 128×96×40 study, and the
//! stacked-weight shapes the LRP rules run) by burn-flex (im2col + gemm) and by conv.rs's
//! direct loop, one thread and all threads. Prints a table; `cargo bench -p seglrp --bench conv`.
//! Natively gemm has 8-lane FMA kernels (AVX2) against the loop's 4 lanes, and still loses where
//! the channels are few; in wasm both have 4 lanes.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::ops::conv;
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

fn main() {
    let device = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(1);
    let mut random = |dims: [usize; 5]| {
        let n = dims.iter().product();
        Tensor::<5>::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), dims), &device)
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "| layer shape | in → out channels | GFMA | burn-flex 1 thread | direct 1 thread | burn-flex {threads} \
        threads | direct {threads} threads |"
    );
    println!("|---|---|---|---|---|---|---|");
    let shapes = [
        ("level 0 (encoder)", 8, 8, [40, 96, 128]),
        ("level 0 (Gamma z, z·w⁺)", 8, 16, [40, 96, 128]),
        ("level 0 (decoder)", 16, 8, [40, 96, 128]),
        ("level 1", 16, 16, [20, 48, 64]),
        ("level 2", 32, 32, [10, 24, 32]),
    ];
    for (name, ci, co, [d, h, w]) in shapes {
        let x = random([1, ci, d, h, w]);
        let wt = random([co, ci, 3, 3, 3]);
        let options = ConvOptions::new([1; 3], [1; 3], [1; 3], 1);
        let gfma = (d * h * w * ci * co * 27) as f64 / 1e9;
        let mut cells = Vec::new();
        for pool_threads in [1, threads] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(pool_threads).build().unwrap();
            let burn =
                pool.install(|| best(3, || drop(conv3d(x.clone(), wt.clone(), None, options.clone()).into_data())));
            let direct =
                pool.install(|| best(3, || drop(conv::direct(x.clone(), wt.clone(), None, [(1, 1); 3]).into_data())));
            cells.push(format!("{:.0} ms ({:.1} GFMA/s)", burn * 1e3, gfma / burn));
            cells.push(format!("{:.0} ms ({:.1} GFMA/s)", direct * 1e3, gfma / direct));
        }
        println!(
            "| {name}, {d}×{h}×{w} | {ci} → {co} | {gfma:.2} | {} | {} | {} | {} |",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
}
