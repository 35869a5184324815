//! An nnU-Net-shaped network on the graph engine, as nnU-Net's 3d_fullres plans it for a CT
//! task: PlainConvUNet, 6 stages of 32→320 features, two conv–instance norm–leaky ReLU blocks
//! per stage, strided-conv down-sampling, transposed-conv up-sampling, 1 channel, 2 classes,
//! random weights; one 128×128×128 patch. Prints the segmentation pass (which freezes the
//! instance norms' statistics), one click (a voxel's map), a 1000-voxel region map and the
//! process's peak memory in each, on the CPU and, with `--gpu`, on the GPU through burn-wgpu.
//!
//! With `--predictor P`, also nnU-Net's predictor on the same volume (spatial/predictor.rs):
//! windows of P³, half-overlapping, Gaussian-weighted, mirrored along the three axes unless
//! `--no-mirroring`: its segmentation and one click of its blended logit (engine/blended.rs).
//!
//! With `--profile`, first the forward pass node by node on the CPU: seconds and GMAC/s per kind of
//! operation and the slowest nodes (where the time goes against ONNX Runtime's forward pass,
//! `npm run bench:zennit -- --network nnunet`).
//!
//! `cargo bench -p seglrp --bench nnunet [-- --size 96] [--gpu] [--no-region] [--composite NAME]
//! [--predictor 64 [--no-mirroring]] [--profile]`

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{self, prepare};
use seglrp::io::volume::Volume;
use seglrp::lrp::Composite;
use seglrp::model::graph::{Graph, Op};
use seglrp::rng::SplitMix;

#[path = "networks/plain_conv_unet.rs"]
mod plain_conv_unet;
use plain_conv_unet::{network, FEATURES};

/// The process's peak resident memory (GiB) since the last [`reset_peak`] (Linux; NaN elsewhere).
fn peak_gib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / (1024.0 * 1024.0))
}

fn reset_peak() {
    // "5" resets the peak resident set size to the current one (Linux 4.0 and later).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size =
        args.iter().position(|a| a == "--size").and_then(|i| args.get(i + 1)?.parse::<usize>().ok()).unwrap_or(128);
    let mut devices = vec![(
        format!("CPU ({})", seglrp::backend::default_cpu_backend()),
        seglrp::backend::cpu_device("cpu").unwrap(),
    )];
    if args.iter().any(|a| a == "--gpu") {
        match seglrp::backend::gpu_device() {
            Ok(d) => devices.push(("GPU (burn-wgpu)".to_string(), d)),
            Err(e) => println!("no GPU rows: {e}"),
        }
    }
    if args.iter().any(|a| a == "--profile") {
        profile(size);
    }
    println!(
        "nnU-Net-shaped network (PlainConvUNet, 6 stages, {FEATURES:?} features, instance norm), 1 channel, 2 \
         classes, {size}³ voxels"
    );
    println!();
    println!(
        "| device | parameters | whole-pass activations | segmentation (freezes the norms) | peak | one click | peak \
         | 1000-voxel region | peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, device) in devices {
        let graph = network(&device);
        let dims = [size; 3];
        let mut rng = SplitMix::new(3);
        let data: Vec<f32> = (0..size * size * size).map(|_| rng.normal()).collect();
        let vol = Volume {
            dims,
            channels: 1,
            spacing: [1.0; 3],
            affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]),
            data,
        };
        let whole = engine::trace_bytes(&graph, size * size * size) as f64 / (1u64 << 30) as f64;
        if let Some(p) = args.iter().position(|a| a == "--predictor").and_then(|i| args.get(i + 1)?.parse().ok()) {
            predictor(&name, &graph, &vol, p, !args.iter().any(|a| a == "--no-mirroring"), &device);
        }
        reset_peak();
        let t = Instant::now();
        let prepared = prepare(&graph, &vol, &device, PrepareOptions::default().with_normalised(true)).unwrap();
        let mask = pollster::block_on(engine::segmentation(&prepared)).unwrap();
        let (t_seg, m_seg) = (t.elapsed().as_secs_f64(), peak_gib());
        eprintln!("{name}: segmentation {t_seg:.1} s, peak {m_seg:.2} GiB");
        std::hint::black_box(mask.iter().map(|v| *v as usize).sum::<usize>());
        let composite = match args.iter().position(|a| a == "--composite").and_then(|i| args.get(i + 1)) {
            Some(name) => engine::composite(name, &prepared).unwrap(),
            None => Composite::EpsilonPlus,
        };
        reset_peak();
        let t = Instant::now();
        let e = pollster::block_on(engine::explain(&prepared, [size / 2; 3], 1, &composite)).unwrap();
        let (t_click, m_click) = (t.elapsed().as_secs_f64(), peak_gib());
        eprintln!("{name}: click {t_click:.1} s, peak {m_click:.2} GiB");
        eprintln!("{name}: composite {composite:?}");
        std::hint::black_box(e.relevance.len());
        if args.iter().any(|a| a == "--no-region") {
            let m = graph.parameters() as f64 / 1e6;
            println!(
                "| {name} | {m:.1} M | {whole:.1} GiB | {t_seg:.1} s | {m_seg:.2} GiB | {t_click:.1} s \
                 | {m_click:.2} GiB | – | – |"
            );
            continue;
        }
        let region: Vec<u8> = (0..size * size * size)
            .map(|i| {
                let (x, y, z) = (i % size, (i / size) % size, i / (size * size));
                let inside = |v: usize| (size / 2 - 5..size / 2 + 5).contains(&v);
                u8::from(inside(x) && inside(y) && inside(z))
            })
            .collect();
        reset_peak();
        let t = Instant::now();
        let r = pollster::block_on(engine::explain_regions(&prepared, &[&region], Some(1), &composite, |_, _| {}))
            .unwrap()
            .remove(0);
        let (t_region, m_region) = (t.elapsed().as_secs_f64(), peak_gib());
        std::hint::black_box(r.relevance.len());
        println!(
            "| {name} | {:.1} M | {whole:.1} GiB | {t_seg:.1} s | {m_seg:.2} GiB | {t_click:.1} s | {m_click:.2} GiB \
             | {t_region:.1} s | {m_region:.2} GiB |",
            graph.parameters() as f64 / 1e6
        );
    }
}

/// nnU-Net's predictor on `vol` with windows of `patch`³: the segmentation and one click.
fn predictor(name: &str, graph: &Graph, vol: &Volume, patch: usize, mirror: bool, device: &Device) {
    use seglrp::spatial::sliding::{argmax, blend, Patches};
    let axes: &[usize] = if mirror { &[0, 1, 2] } else { &[] };
    let patches = Patches::new([patch; 3]);
    reset_peak();
    let t = Instant::now();
    let b = pollster::block_on(blend(graph, vol, patches, axes, device, |_, _| {})).unwrap();
    let labels = argmax(&b.half, b.classes);
    let (t_seg, m_seg) = (t.elapsed().as_secs_f64(), peak_gib());
    std::hint::black_box(labels.iter().map(|v| *v as usize).sum::<usize>());
    let blended = engine::Blend { graph, input: vol, patches, mirror: axes, composite: "EpsilonPlus" };
    let centre = vol.dims.map(|d| d / 2);
    reset_peak();
    let t = Instant::now();
    let e = pollster::block_on(engine::explain_blended(&blended, centre, 1, device, |_, _| {})).unwrap();
    let (t_click, m_click) = (t.elapsed().as_secs_f64(), peak_gib());
    std::hint::black_box(e.relevance.len());
    let mirrorings = if mirror { 8 } else { 1 };
    println!(
        "nnU-Net's predictor, {name}: {} windows of {patch}³ × {mirrorings} mirrorings: segmentation {t_seg:.1} s \
         (peak {m_seg:.2} GiB); a click at the centre {t_click:.1} s (peak {m_click:.2} GiB)",
        b.origins.len()
    );
    println!();
}

/// Multiply-adds of node `i` given its output's dims (convs only; 0 elsewhere).
fn macs(graph: &Graph, i: usize, out: [usize; 5]) -> f64 {
    let Op::Conv(c) = &graph.nodes[i].op else { return 0.0 };
    let taps: usize = c.kernel().iter().product();
    let voxels: usize = out[2..].iter().product();
    let per_voxel = (c.in_channels() * c.out_channels() * taps) as f64;
    // A transposed conv's taps scatter from its input voxels (stride³ fewer than its outputs).
    let stride: usize = if c.transposed { c.stride.iter().product() } else { 1 };
    voxels as f64 * per_voxel / stride as f64
}

/// The CPU forward pass node by node (burn-flex runs each op eagerly, so the time between two
/// nodes is the later one's): per kind of operation and the slowest nodes.
fn profile(size: usize) {
    let device = seglrp::backend::cpu_device("cpu").unwrap();
    let graph = network(&device);
    let mut rng = SplitMix::new(3);
    let data: Vec<f32> = (0..size * size * size).map(|_| rng.normal()).collect();
    let x = Tensor::<5>::from_data(TensorData::new(data, [1, 1, size, size, size]), &device);
    std::hint::black_box(graph.forward(x.clone()).into_data());
    let n = graph.nodes.len();
    let (mut secs, mut dims) = (vec![0.0f64; n], vec![[0usize; 5]; n]);
    let start = Instant::now();
    let mut last = Instant::now();
    let out = graph.forward_observed(x, |i, out| {
        secs[i] = last.elapsed().as_secs_f64();
        dims[i] = out.dims();
        last = Instant::now();
    });
    std::hint::black_box(out.into_data());
    let total = start.elapsed().as_secs_f64();
    println!("The CPU forward pass at {size}³, node by node: {total:.2} s");
    println!();
    println!("| operation | nodes | seconds | share | GMAC | GMAC/s |");
    println!("|---|---|---|---|---|---|");
    let mut kinds: Vec<(&str, usize, f64, f64)> = Vec::new();
    for i in 1..n {
        let kind = match &graph.nodes[i].op {
            Op::Conv(c) if c.transposed => "ConvTranspose3d",
            Op::Conv(c) if c.stride != [1; 3] => "Conv3d, strided",
            Op::Conv(c) if c.kernel() == [1; 3] => "Conv3d, 1×1×1",
            Op::Conv(_) => "Conv3d, stride 1",
            op => op.kind(),
        };
        let m = macs(&graph, i, dims[i]) / 1e9;
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => (k.1, k.2, k.3) = (k.1 + 1, k.2 + secs[i], k.3 + m),
            None => kinds.push((kind, 1, secs[i], m)),
        }
    }
    kinds.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (kind, count, s, m) in kinds {
        let rate = if m > 0.0 { format!("{:.1}", m / s) } else { "–".into() };
        let m = if m > 0.0 { format!("{m:.2}") } else { "–".into() };
        println!("| {kind} | {count} | {s:.3} | {:.0} % | {m} | {rate} |", 100.0 * s / total);
    }
    println!();
    let mut order: Vec<usize> = (1..n).collect();
    order.sort_by(|&a, &b| secs[b].total_cmp(&secs[a]));
    println!("| slowest nodes | output | seconds | GMAC/s |");
    println!("|---|---|---|---|");
    for &i in order.iter().take(10) {
        let m = macs(&graph, i, dims[i]) / 1e9;
        let rate = if m > 0.0 { format!("{:.1}", m / secs[i]) } else { "–".into() };
        let [_, c, d, h, w] = dims[i];
        println!("| {} | {c}×{d}×{h}×{w} | {:.3} | {rate} |", graph.nodes[i].name, secs[i]);
    }
    println!();
}
