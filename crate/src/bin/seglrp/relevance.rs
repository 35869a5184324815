//! `seglrp relevance`: LRP on a raw input tensor, without normalisation, for checks against
//! other implementations (tests/lrp_parity.py, scripts/bench_zennit.py).

use std::path::PathBuf;

use seglrp::backend;
use seglrp::engine;
use seglrp::lrp;

use crate::common::{load_model, numbers, write};

#[derive(clap::Args)]
pub struct Args {
    /// safetensors written by `seglrp model` (its configuration is in the file), or with --config;
    /// or an nnU-Net trained-model folder (run on the graph engine).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// float32 little-endian, [C, D, H, W] row-major.
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, value_parser = numbers::<4>)]
    pub shape: [usize; 4],
    /// Output voxel as d,h,w (tensor axes).
    #[arg(long, value_parser = numbers::<3>, required_unless_present = "region")]
    pub voxel: Option<[usize; 3]>,
    /// Instead of one voxel, the exact two-pass region map over the box d0,h0,w0,d1,h1,w1
    /// (start inclusive, end exclusive; README "LRP").
    #[arg(long, value_parser = numbers::<6>, conflicts_with = "voxel")]
    pub region: Option<[usize; 6]>,
    #[arg(long, default_value_t = 1)]
    pub class: usize,
    /// Explain the logit difference class − VERSUS instead of the class's logit.
    #[arg(long, value_name = "VERSUS")]
    pub versus: Option<usize>,
    #[arg(long, default_value = engine::DEFAULT_COMPOSITE)]
    pub composite: String,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write all logits (float32 [classes, D, H, W], cropped) here.
    #[arg(long)]
    pub logits: Option<PathBuf>,
    /// Instead of an LRP composite, another attribution method for the --region box
    /// (gradient, gradient_x_input, integrated_gradients, smoothgrad, occlusion, random;
    /// README "How faithful is a map?"), run as `seglrp faithfulness` runs it.
    #[arg(long, requires = "region", conflicts_with = "repeat")]
    pub method: Option<String>,
    #[command(flatten)]
    pub methods: crate::faithfulness::MethodArgs,
    /// Run the forward pass and the LRP pass (or region map) N times and report the fastest
    /// in the JSON (`forward_s`, `trace_s`, `lrp_s`, `region_s`; scripts/bench_zennit.py). Both passes
    /// run each node on its nested window around the voxels explained.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,
}

/// The composite called `name` (or given as JSON), with EpsilonGammaBox's bounds from `low` and
/// `high`.
fn composite_for(name: &str, low: &[f32], high: &[f32]) -> Result<lrp::Composite, String> {
    if name.trim_start().starts_with('{') {
        return serde_json::from_str(name).map_err(|e| format!("the composite JSON is not usable: {e}"));
    }
    match lrp::Composite::by_name(name) {
        Some(lrp::Composite::EpsilonGammaBox { .. }) => {
            Ok(lrp::Composite::EpsilonGammaBox { low: low.to_vec(), high: high.to_vec() })
        }
        Some(c) => Ok(c),
        None => Err(format!("unknown composite \"{name}\"; choose one of {}", lrp::composite::NAMES.join(", "))),
    }
}

/// LRP on a raw input tensor for any model: the input zero-padded at the end to the network's
/// alignment (as the engine pads studies), outputs cropped back.
pub fn run(args: Args) -> Result<(), String> {
    use burn::prelude::*;
    use burn::tensor::TensorData;
    use seglrp::lrp::walk;
    let device = backend::cpu_device("cpu")?;
    let graph = &if args.model.is_dir() || args.config.is_none() {
        seglrp::model::open::open(&args.model, None, &device)?.graph
    } else {
        seglrp::model::Graph::from(&load_model(&args.model, args.config.as_deref(), &device)?)
    };
    let raw = std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let x: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let [c, d, h, w] = args.shape;
    if x.len() != c * d * h * w {
        return Err(format!("{}: {} values, but the shape needs {}", args.input.display(), x.len(), c * d * h * w));
    }
    if c != graph.in_channels {
        return Err(format!("the model reads {} channels; the input has {c}", graph.in_channels));
    }
    if args.class >= graph.classes {
        return Err(format!("class {} does not exist (the model has {})", args.class, graph.classes));
    }
    let a = graph.align();
    let p = [d.div_ceil(a[0]) * a[0], h.div_ceil(a[1]) * a[1], w.div_ceil(a[2]) * a[2]];
    let mut padded = vec![0f32; c * p[0] * p[1] * p[2]];
    for ch in 0..c {
        for z in 0..d {
            for y in 0..h {
                let src = ((ch * d + z) * h + y) * w;
                let dst = ((ch * p[0] + z) * p[1] + y) * p[2];
                padded[dst..dst + w].copy_from_slice(&x[src..src + w]);
            }
        }
    }
    let n = p[0] * p[1] * p[2];
    let (low, high): (Vec<f32>, Vec<f32>) = (0..c)
        .map(|ch| {
            padded[ch * n..(ch + 1) * n]
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)))
        })
        .unzip();
    let composite = composite_for(&args.composite, &low, &high)?;
    if let (Some(method), Some(b)) = (&args.method, args.region) {
        return run_method(&args, method, graph, x, b, &device);
    }
    let host = |t: Tensor<5>| t.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"));
    let crop = |v: Vec<f32>, channels: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(channels * d * h * w);
        for ch in 0..channels {
            for z in 0..d {
                for y in 0..h {
                    let at = ((ch * p[0] + z) * p[1] + y) * p[2];
                    out.extend_from_slice(&v[at..at + w]);
                }
            }
        }
        out
    };
    let input = Tensor::<5>::from_data(TensorData::new(padded, [1, c, p[0], p[1], p[2]]), &device);
    // --repeat: the fastest of N runs, each read back to the host (scripts/bench_zennit.py).
    let repeat = args.repeat.max(1);
    // The forward pass as segmentation runs it (the logits alone), and the forward pass LRP
    // reads (every layer's output kept, each norm merged into its conv: for instance norm the
    // conv runs twice, once for the statistics and once merged).
    let (mut forward_s, mut trace_s) = (f64::INFINITY, f64::INFINITY);
    let mut trace = None;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        host(graph.forward(input.clone()))?;
        forward_s = forward_s.min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let tr = graph.trace(input.clone());
        host(tr.value(graph.output).clone())?;
        trace_s = trace_s.min(t.elapsed().as_secs_f64());
        trace = Some(tr);
    }
    let trace = trace.expect("at least one run");
    let logits = trace.value(graph.output).clone();
    if let Some(path) = &args.logits {
        let l = crop(host(logits.clone())?, graph.classes);
        write(path, &l.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    let (r, mut summary) = match (args.voxel, args.region) {
        (Some(v), _) => {
            if v[0] >= d || v[1] >= h || v[2] >= w {
                return Err(format!("voxel {v:?} lies outside {d}×{h}×{w}"));
            }
            let target = match args.versus {
                Some(other) if other >= graph.classes || other == args.class => {
                    return Err(format!("--versus {other}: another existing class is needed"))
                }
                Some(other) => lrp::Target::Difference { other },
                None => lrp::Target::Logit,
            };
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..repeat {
                let t = std::time::Instant::now();
                let e = walk::explain_target(graph, &trace, &composite, args.class, v, target);
                let logit = e.logit.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?[0];
                let r = host(e.relevance)?;
                best = best.min(t.elapsed().as_secs_f64());
                out = Some((r, logit));
            }
            let (r, logit) = out.expect("at least one run");
            (r, serde_json::json!({ "logit": logit, "lrp_s": best }))
        }
        (None, Some([d0, h0, w0, d1, h1, w1])) => {
            if d0 >= d1 || h0 >= h1 || w0 >= w1 || d1 > d || h1 > h || w1 > w {
                return Err(format!("the region box must lie inside {d}×{h}×{w} and not be empty"));
            }
            let mut mask = vec![0f32; n];
            for z in d0..d1 {
                for y in h0..h1 {
                    mask[(z * p[1] + y) * p[2] + w0..(z * p[1] + y) * p[2] + w1].fill(1.0);
                }
            }
            let region = Tensor::<5>::from_data(TensorData::new(mask, [1, 1, p[0], p[1], p[2]]), &device);
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..repeat {
                let t = std::time::Instant::now();
                let bounds = ([d0, h0, w0], [d1 - 1, h1 - 1, w1 - 1]);
                let m =
                    seglrp::lrp::region_map::region_map(graph, &trace, &composite, args.class, region.clone(), bounds);
                let kept = host(m.kept)?.iter().filter(|v| **v > 0.5).count();
                let r = host(m.relevance)?;
                best = best.min(t.elapsed().as_secs_f64());
                out = Some((r, kept));
            }
            let (r, kept) = out.expect("at least one run");
            let voxels = (d1 - d0) * (h1 - h0) * (w1 - w0);
            let summary = serde_json::json!({
                "region_voxels": voxels,
                "kept": kept,
                "left_out": voxels - kept,
                "region_s": best,
            });
            (r, summary)
        }
        (None, None) => return Err("give --voxel or --region".into()),
    };
    // The relevance on the padding beyond the input is left out of the map and reported.
    let all: f64 = r.iter().map(|v| *v as f64).sum();
    let r = crop(r, c);
    let inside: f64 = r.iter().map(|v| *v as f64).sum();
    write(&args.out, &r.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    summary["relevance_sum"] = serde_json::json!(inside);
    summary["padding_relevance"] = serde_json::json!(all - inside);
    summary["composite"] = serde_json::json!(args.composite);
    summary["forward_s"] = serde_json::json!(forward_s);
    summary["trace_s"] = serde_json::json!(trace_s);
    println!("{summary}");
    Ok(())
}

/// `--method`: the map of another attribution method for the box `b` (d0,h0,w0,d1,h1,w1) of the
/// raw input `x`, through the same probe as `seglrp faithfulness` (crate/src/faithfulness).
fn run_method(
    args: &Args,
    method: &str,
    graph: &seglrp::model::Graph,
    x: Vec<f32>,
    b: [usize; 6],
    device: &burn::prelude::Device,
) -> Result<(), String> {
    use seglrp::faithfulness::{attribute, Method, Probe};
    let [c, d, h, w] = args.shape;
    let [d0, h0, w0, d1, h1, w1] = b;
    if d0 >= d1 || h0 >= h1 || w0 >= w1 || d1 > d || h1 > h || w1 > w {
        return Err(format!("the region box must lie inside {d}×{h}×{w} and not be empty"));
    }
    let volume = seglrp::io::volume::Volume {
        dims: [w, h, d],
        channels: c,
        spacing: [1.0; 3],
        affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]),
        data: x,
    };
    let options = engine::PrepareOptions::default().with_mode(engine::Mode::Whole).with_normalised(true);
    let p = engine::prepare(graph.clone(), &volume, device, options)?;
    let mut region = vec![0u8; d * h * w];
    for z in d0..d1 {
        for y in h0..h1 {
            region[(z * h + y) * w + w0..(z * h + y) * w + w1].fill(1);
        }
    }
    let method = Method::parse(method, |n| engine::composite(n, &p))?;
    let options = args.methods.options();
    let t = std::time::Instant::now();
    let (map, window, full) = pollster::block_on(async {
        let probe = Probe::new(&p, &region, Some(args.class)).await?;
        let baseline = args.methods.baseline()?.values(&probe, options.seed);
        let map = attribute(&probe, &method, &baseline, &options, &mut |_, _| {}).await?;
        Ok::<_, String>((probe.on_study(&map, p.dims), probe.window(), p.padded))
    })?;
    write(&args.out, &map.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    let summary = serde_json::json!({
        "method": method.name(),
        "window": [window.lo, window.hi],
        "grid": full,
        "seconds": t.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}
