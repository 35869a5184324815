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
//! `cargo bench -p seglrp --bench nnunet [-- --size 96] [--gpu] [--no-region] [--composite NAME]
//! [--predictor 64 [--no-mirroring]]`

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{self, prepare};
use seglrp::io::volume::Volume;
use seglrp::lrp::Composite;
use seglrp::model::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use seglrp::rng::SplitMix;

const FEATURES: [usize; 6] = [32, 64, 128, 256, 320, 320];

struct Builder<'a> {
    nodes: Vec<Node>,
    rng: SplitMix,
    device: &'a Device,
}

impl Builder<'_> {
    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name, op, inputs });
        self.nodes.len() - 1
    }

    fn random(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.normal() * scale).collect()
    }

    /// Conv (kaiming-scaled weights), instance norm (affine), leaky ReLU.
    fn block(&mut self, name: &str, x: usize, cin: usize, cout: usize, stride: usize) -> usize {
        let fan_in = cin * 27;
        let w = self.random(cout * fan_in, (2.0 / fan_in as f32).sqrt());
        let weight = Tensor::from_data(TensorData::new(w, [cout, cin, 3, 3, 3]), self.device);
        let bias = Some(Tensor::from_data(TensorData::new(self.random(cout, 0.1), [cout]), self.device));
        let spec =
            ConvSpec { weight, bias, stride: [stride; 3], padding: [1; 3], output_padding: [0; 3], transposed: false };
        let c = self.push(format!("{name}.conv"), Op::Conv(spec), vec![x]);
        let gamma: Vec<f32> = self.random(cout, 0.2).into_iter().map(|v| 1.0 + v).collect();
        let norm = NormSpec {
            statistics: Statistics::Instance,
            weight: Some(Tensor::from_data(TensorData::new(gamma, [cout]), self.device)),
            bias: Some(Tensor::from_data(TensorData::new(self.random(cout, 0.1), [cout]), self.device)),
            eps: 1e-5,
            channels: cout,
        };
        let n = self.push(format!("{name}.norm"), Op::Norm(norm), vec![c]);
        self.push(format!("{name}.nonlin"), Op::LeakyRelu(0.01), vec![n])
    }
}

fn network(device: &Device) -> Graph {
    let mut b = Builder { nodes: vec![], rng: SplitMix::new(11), device };
    b.push("input".into(), Op::Input, vec![]);
    let mut h = 0;
    let mut cin = 1;
    let mut skips = Vec::new();
    for (s, &f) in FEATURES.iter().enumerate() {
        h = b.block(&format!("encoder.stages.{s}.0"), h, cin, f, if s == 0 { 1 } else { 2 });
        h = b.block(&format!("encoder.stages.{s}.1"), h, f, f, 1);
        skips.push(h);
        cin = f;
    }
    skips.pop();
    for s in (0..FEATURES.len() - 1).rev() {
        let (fin, f) = (FEATURES[s + 1], FEATURES[s]);
        let w = b.random(fin * f * 8, (1.0 / (fin * 8) as f32).sqrt());
        let weight = Tensor::from_data(TensorData::new(w, [fin, f, 2, 2, 2]), device);
        let spec =
            ConvSpec { weight, bias: None, stride: [2; 3], padding: [0; 3], output_padding: [0; 3], transposed: true };
        let up = b.push(format!("decoder.transpconvs.{s}"), Op::Conv(spec), vec![h]);
        let skip = skips.pop().expect("a skip per stage");
        let cat = b.push(format!("decoder.cat.{s}"), Op::Concat, vec![up, skip]);
        h = b.block(&format!("decoder.stages.{s}.0"), cat, 2 * f, f, 1);
        h = b.block(&format!("decoder.stages.{s}.1"), h, f, f, 1);
    }
    let w = b.random(2 * FEATURES[0], (1.0 / FEATURES[0] as f32).sqrt());
    let weight = Tensor::from_data(TensorData::new(w, [2, FEATURES[0], 1, 1, 1]), device);
    let spec =
        ConvSpec { weight, bias: None, stride: [1; 3], padding: [0; 3], output_padding: [0; 3], transposed: false };
    let head = b.push("decoder.seg_layers.4".into(), Op::Conv(spec), vec![h]);
    Graph::from_nodes(b.nodes, head, 1).expect("a valid network")
}

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
