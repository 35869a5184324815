//! The GPU path profiled: for the bundled U-Net (6 channels) and the nnU-Net-shaped network
//! (1 channel), the segmentation, one click (LRP-ε) and one 1000-voxel region map through
//! burn-wgpu natively, each with its seconds, the kernels it launched (counted by cubecl's launch
//! observer, which sees every kernel burn issues) and its host reads (the engine's reads back to
//! the host: [`seglrp::backend::reads`]). Each pass runs once unobserved first, so that shader
//! compilation and autotuning are not in the figures.
//!
//! With `--timed`, each pass runs a third time with every kernel timed on the device and read
//! back one by one (serialised: the sum is not the pass's time, the split is where it goes).
//! `--cpu` runs the same table on the CPU engine (seconds and host reads; no kernels).
//!
//! `cargo bench -p seglrp --bench gpu [-- --size 128,128,64] [--nnunet-size 64] [--networks bundled,nnunet]
//! [--timed] [--cpu]` (on a software Vulkan driver such as lavapipe, small sizes and minutes per
//! pass: `--size 32,32,16 --networks bundled`)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::prelude::*;
use cubecl_runtime::logging::{Duration, LaunchObservation, LaunchObserver, TimingMethod, TimingRequest};
use seglrp::engine::{self, prepare, PrepareOptions, Prepared};
use seglrp::io::geometry::Affine;
use seglrp::io::volume::Volume;
use seglrp::lrp::Composite;
use seglrp::model::Graph;
use seglrp::rng::SplitMix;

#[path = "networks/plain_conv_unet.rs"]
mod plain_conv_unet;

/// Launches per kernel name, and the device seconds per name when timed.
#[derive(Default)]
struct Kernels {
    timed: bool,
    seen: Mutex<HashMap<&'static str, (usize, f64)>>,
}

impl LaunchObserver for Kernels {
    fn launched(&self, kernel: &'static str) {
        self.seen.lock().unwrap().entry(kernel).or_default().0 += 1;
    }

    fn timing(&self) -> TimingRequest {
        if self.timed {
            TimingRequest::Resolved
        } else {
            TimingRequest::None
        }
    }

    fn timed(&self, kernel: &'static str, duration: Duration, _: TimingMethod) {
        self.seen.lock().unwrap().entry(kernel).or_default().1 += duration.as_secs_f64();
    }
}

impl Kernels {
    /// Launches, and the names grouped as burn's kernels name themselves (the module path up to
    /// the generic arguments, shortened to its last two parts), most launched first.
    fn summary(&self) -> (usize, Vec<(String, usize, f64)>) {
        let seen = self.seen.lock().unwrap();
        let mut groups: HashMap<String, (usize, f64)> = HashMap::new();
        for (name, (n, s)) in seen.iter() {
            let path = name.split('<').next().unwrap_or(name);
            let parts: Vec<&str> = path.split("::").collect();
            let short = parts[parts.len().saturating_sub(2)..].join("::");
            let g = groups.entry(short).or_default();
            (g.0, g.1) = (g.0 + n, g.1 + s);
        }
        let mut v: Vec<(String, usize, f64)> = groups.into_iter().map(|(k, (n, s))| (k, n, s)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)));
        (v.iter().map(|g| g.1).sum(), v)
    }
}

/// One pass of the engine, as the page runs it.
#[derive(Clone, Copy)]
enum Pass {
    /// A study opened: normalised, its norms frozen (instance norm), segmented.
    Segmentation,
    Click,
    Region,
}

async fn run(pass: Pass, study: &Study<'_>, p: &Prepared) {
    let composite = Composite::Epsilon { epsilon: 1e-6 };
    let centre = p.dims.map(|d| d / 2);
    match pass {
        Pass::Segmentation => {
            let options = PrepareOptions::default().with_normalised(true);
            let fresh = prepare(study.graph, study.volume, study.device, options).unwrap();
            drop(engine::segmentation(&fresh).await.unwrap())
        }
        Pass::Click => drop(engine::explain(p, centre, 1, &composite).await.unwrap()),
        Pass::Region => {
            drop(engine::explain_regions(p, &[&study.region], Some(1), &composite, |_, _| {}).await.unwrap())
        }
    }
}

struct Study<'a> {
    graph: &'a Graph,
    volume: &'a Volume,
    device: &'a Device,
    region: Vec<u8>,
}

/// 1000 voxels (10³) around the centre, file order.
fn region(dims: [usize; 3]) -> Vec<u8> {
    let [nx, ny, nz] = dims;
    let inside = |v: usize, n: usize| (n / 2 - 5..n / 2 + 5).contains(&v);
    (0..nx * ny * nz)
        .map(|i| u8::from(inside(i % nx, nx) && inside(i / nx % ny, ny) && inside(i / (nx * ny), nz)))
        .collect()
}

fn profile(name: &str, graph: &Graph, channels: usize, dims: [usize; 3], device: &Device, gpu: bool, timed: bool) {
    let mut rng = SplitMix::new(3);
    let data: Vec<f32> = (0..channels * dims.iter().product::<usize>()).map(|_| rng.normal()).collect();
    let vol = Volume { dims, channels, spacing: [1.0; 3], affine: Affine::diagonal([1.0; 3]), data };
    let options = PrepareOptions::default().with_normalised(true);
    let prepared = prepare(graph, &vol, device, options).unwrap();
    pollster::block_on(engine::segmentation(&prepared)).unwrap();
    let study = Study { graph, volume: &vol, device, region: region(dims) };
    let size = dims.map(|d| d.to_string()).join("×");
    for (label, pass) in [
        ("segmentation (a study opened)", Pass::Segmentation),
        ("one click", Pass::Click),
        ("1000-voxel region map", Pass::Region),
    ] {
        pollster::block_on(run(pass, &study, &prepared));
        let kernels = Arc::new(Kernels::default());
        let reads = seglrp::backend::reads();
        let t = Instant::now();
        let watching = gpu.then(|| LaunchObservation::new(kernels.clone()));
        pollster::block_on(run(pass, &study, &prepared));
        drop(watching);
        let secs = t.elapsed().as_secs_f64();
        let reads = seglrp::backend::reads() - reads;
        let (count, groups) = kernels.summary();
        let top: Vec<String> = groups.iter().take(6).map(|(k, n, _)| format!("{n} {k}")).collect();
        let (count, top) = if gpu { (count.to_string(), top.join(", ")) } else { ("–".into(), String::new()) };
        println!("| {name} | {size} | {label} | {secs:.3} s | {count} | {reads} | {top} |");
        if timed && gpu {
            let kernels = Arc::new(Kernels { timed: true, ..Kernels::default() });
            let watching = LaunchObservation::new(kernels.clone());
            pollster::block_on(run(pass, &study, &prepared));
            drop(watching);
            let (_, groups) = kernels.summary();
            let total: f64 = groups.iter().map(|g| g.2).sum();
            let mut by_time = groups.clone();
            by_time.sort_by(|a, b| b.2.total_cmp(&a.2));
            let split: Vec<String> = by_time
                .iter()
                .take(6)
                .map(|(k, n, s)| format!("{k} {:.0} % ({n}, {:.1} ms)", 100.0 * s / total, s * 1e3))
                .collect();
            println!("| | | (device time, kernels one by one: {:.1} ms) | | | | {} |", total * 1e3, split.join(", "));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let dims: Vec<usize> =
        arg("--size").unwrap_or("128,128,64".into()).split(',').map(|v| v.parse().unwrap()).collect();
    let dims = [dims[0], dims[1], dims[2]];
    let cube: usize = arg("--nnunet-size").and_then(|v| v.parse().ok()).unwrap_or(64);
    let timed = args.iter().any(|a| a == "--timed");
    let cpu = args.iter().any(|a| a == "--cpu");
    let networks = arg("--networks").unwrap_or("bundled,nnunet".into());
    let (label, device) = if cpu {
        (format!("CPU ({})", seglrp::backend::default_cpu_backend()), seglrp::backend::cpu_device("cpu").unwrap())
    } else {
        match seglrp::backend::gpu_device() {
            Ok(d) => ("GPU (burn-wgpu)".to_string(), d),
            Err(e) => {
                println!("no GPU: {e} (--cpu runs the table on the CPU)");
                return;
            }
        }
    };
    println!("SegLRP engine on {label}: seconds, kernels launched and host reads per pass (after one warm-up run)");
    println!();
    println!("| network | voxels | pass | seconds | kernels | host reads | most launched |");
    println!("|---|---|---|---|---|---|---|");
    if networks.contains("bundled") {
        let graph = seglrp::model::unet::graph(&seglrp::model::weights::bundled(&device).unwrap());
        profile("bundled U-Net", &graph, 6, dims, &device, !cpu, timed);
    }
    if networks.contains("nnunet") {
        let graph = plain_conv_unet::network(&device);
        profile("nnU-Net-shaped", &graph, 1, [cube; 3], &device, !cpu, timed);
    }
}
