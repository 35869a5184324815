//! The graph engine: the U-Net builder's graph computes the U-Net's forward pass and reaches no
//! further than its receptive field; the walk's own properties (conservation through residual
//! sums and average pooling, `⟨L r, v⟩ = ⟨r, Lᵀ v⟩` for its transpose); nested windows, windowed
//! passes and region maps equal the whole-grid pass and the per-voxel loop. (Its maps against
//! Zennit's: `tests/lrp_parity.py` and `tests/graph_parity.py`.)

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::engine::PrepareOptions;
use seglrp::lrp::target::start_for;
use seglrp::lrp::{region_map as rmap, walk, Composite, Target};
use seglrp::model::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use seglrp::model::unet::{Activation, Down, NormKind, UNet, UNetConfig, Up};
use seglrp::ops::upsample::Mode;
use seglrp::rng::SplitMix;

fn random(shape: [usize; 5], seed: u64, device: &Device) -> Tensor<5> {
    let mut rng = SplitMix::new(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.symmetric(1.0)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn host(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// max |a − b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    d / max_abs(b).max(f32::MIN_POSITIVE)
}

fn composites(channels: usize) -> Vec<(&'static str, Composite)> {
    seglrp::lrp::composite::NAMES
        .iter()
        .map(|n| {
            let c = match Composite::by_name(n).unwrap() {
                Composite::EpsilonGammaBox { .. } => {
                    Composite::EpsilonGammaBox { low: vec![-1.0; channels], high: vec![1.0; channels] }
                }
                c => c,
            };
            (*n, c)
        })
        .collect()
}

fn variants() -> Vec<UNetConfig> {
    let base = UNetConfig { in_channels: 3, classes: 2, levels: 3, base_channels: 4, ..UNetConfig::small() };
    vec![
        base.clone(),
        UNetConfig { norm: NormKind::Batch, down: Down::StridedConv, up: Up::Trilinear, ..base.clone() },
        UNetConfig {
            norm: NormKind::Instance,
            up: Up::Nearest,
            activation: Activation::LeakyRelu,
            blocks: 2,
            ..base.clone()
        },
    ]
}

/// The receptive radius of a U-Net in closed form: along the path through the deepest level,
/// every 3×3×3 conv adds one voxel of its level, every 2×2×2 down step one voxel of the finer
/// level, every up step one voxel of the coarser level (the transposed conv's 2×2×2 footprint,
/// nearest's copy) or two (trilinear interpolation's neighbour).
fn unet_receptive_radius(cfg: &UNetConfig) -> usize {
    let s = |l: usize| 1usize << l;
    let encoder: usize = (0..cfg.levels).map(|l| cfg.blocks * s(l)).sum();
    let decoder: usize = (0..cfg.levels - 1).map(|l| cfg.blocks * s(l)).sum();
    let downs: usize = (0..cfg.levels - 1).map(s).sum();
    let per_up = if cfg.up == Up::Trilinear { 2 } else { 1 };
    let ups: usize = (0..cfg.levels - 1).map(|l| s(l + 1) * per_up).sum();
    encoder + decoder + downs + ups
}

#[test]
fn the_unet_as_a_graph_computes_the_same_logits_and_its_maps_stay_in_the_receptive_field() {
    let dev = cpu_device("cpu").unwrap();
    for (v, cfg) in variants().into_iter().enumerate() {
        let net = UNet::seeded(&cfg, 3 + v as u64, 0.1, &dev);
        let graph = seglrp::model::unet::graph(&net);
        graph.validate().unwrap();
        assert_eq!(graph.align(), [4; 3]);
        let radius = unet_receptive_radius(&cfg);
        assert_eq!(graph.receptive_radius(), [radius; 3], "{cfg:?}");
        let x = random([1, 3, 16, 20, 24], 40 + v as u64, &dev);
        let want = host(net.forward(x.clone()));
        assert!(relative(&host(graph.forward(x.clone())), &want) < 1e-5, "{cfg:?}");
        let trace = graph.trace(x);
        assert!(relative(&host(trace.value(graph.output).clone()), &want) < 1e-5);
        for (name, composite) in composites(3) {
            for voxel in [[1, 2, 2], [14, 17, 21]] {
                let map = host(walk::explain_target(&graph, &trace, &composite, 1, voxel, Target::Logit).relevance);
                assert!(map.iter().all(|r| r.is_finite()) && max_abs(&map) > 0.0, "{name} at {voxel:?} on {cfg:?}");
                // Nothing beyond the receptive field (the grid is larger than it along w).
                let beyond = (0..map.len()).filter(|i| (i % 24).abs_diff(voxel[2]) > radius).map(|i| map[i].abs());
                assert_eq!(beyond.fold(0f32, f32::max), 0.0, "{name} at {voxel:?} on {cfg:?}");
            }
        }
    }
}

#[test]
fn graph_region_maps_equal_the_per_voxel_loop() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = &variants()[1];
    let net = UNet::seeded(cfg, 9, 0.1, &dev);
    let graph = seglrp::model::unet::graph(&net);
    let x = random([1, 3, 16, 16, 16], 5, &dev);
    let trace = graph.trace(x);
    let voxels = [[5, 6, 7], [5, 7, 7], [6, 6, 8], [9, 10, 6]];
    let mut mask = vec![0f32; 16 * 16 * 16];
    for v in voxels {
        mask[(v[0] * 16 + v[1]) * 16 + v[2]] = 1.0;
    }
    let region = Tensor::<5>::from_data(TensorData::new(mask, [1, 1, 16, 16, 16]), &dev);
    for (name, composite) in composites(3) {
        let new = rmap::region_map(&graph, &trace, &composite, 1, region.clone(), ([5, 6, 6], [9, 10, 8]));
        let kept = host(new.kept).iter().filter(|v| **v > 0.5).count();
        let new = host(new.relevance);
        let (naive, left_out) = rmap::naive_region(&graph, &trace, &composite, 1, &voxels);
        assert_eq!(left_out, 4 - kept, "{name}");
        assert!(relative(&new, &host(naive)) < 1e-3, "{name} against the per-voxel loop");
        // Each kept voxel's normalised map sums to 1.
        let sum: f64 = new.iter().map(|v| *v as f64).sum();
        assert!((sum - kept as f64).abs() < 1e-2, "{name}: {sum}");
    }
}

fn conv(rng: &mut SplitMix, cin: usize, cout: usize, k: usize, bias: bool, dev: &Device) -> ConvSpec {
    let n = cout * cin * k * k * k;
    let a = (3.0 / (cin * k * k * k) as f32).sqrt();
    let w: Vec<f32> = (0..n).map(|_| rng.symmetric(a)).collect();
    ConvSpec {
        weight: Tensor::from_data(TensorData::new(w, [cout, cin, k, k, k]), dev),
        bias: bias
            .then(|| Tensor::from_data(TensorData::new((0..cout).map(|_| rng.symmetric(0.1)).collect(), [cout]), dev)),
        stride: [1; 3],
        padding: [k / 2; 3],
        output_padding: [0; 3],
        transposed: false,
    }
}

/// A residual block with a group norm that cannot be merged (it follows an add), PReLU,
/// average pooling and nearest up-sampling: every step the U-Net lacks.
fn residual_graph(bias: bool, dev: &Device) -> Graph {
    let mut rng = SplitMix::new(77);
    let ones = |n: usize| Tensor::<1>::ones([n], dev);
    let mut nodes = vec![Node { name: "input".into(), op: Op::Input, inputs: vec![] }];
    let mut push = |name: &str, op: Op, inputs: Vec<usize>| {
        nodes.push(Node { name: name.into(), op, inputs });
        nodes.len() - 1
    };
    let c0 = push("stem", Op::Conv(conv(&mut rng, 2, 4, 3, bias, dev)), vec![0]);
    let r0 = push("stem.act", Op::Relu, vec![c0]);
    let c1 = push("block.conv1", Op::Conv(conv(&mut rng, 4, 4, 3, bias, dev)), vec![r0]);
    // Batch statistics of mean 0 merge without a bias (LRP-0 then conserves); instance norm
    // would add one.
    let statistics = if bias {
        Statistics::Instance
    } else {
        Statistics::Running { mean: Tensor::zeros([4], dev), var: ones(4) * 2.0 }
    };
    let n1 = push(
        "block.norm1",
        Op::Norm(NormSpec { statistics, weight: None, bias: None, eps: 1e-5, channels: 4 }),
        vec![c1],
    );
    let p1 = push("block.act1", Op::PRelu(Tensor::from_data(TensorData::new(vec![0.2f32; 4], [4]), dev)), vec![n1]);
    let c2 = push("block.conv2", Op::Conv(conv(&mut rng, 4, 4, 3, bias, dev)), vec![p1]);
    let add = push("block.add", Op::Add, vec![c2, r0]);
    let gn = push(
        "block.norm2",
        Op::Norm(NormSpec {
            statistics: Statistics::Group(2),
            weight: Some(ones(4) * 1.5),
            bias: if bias { Some(ones(4) * 0.1) } else { None },
            eps: 1e-5,
            channels: 4,
        }),
        vec![add],
    );
    let a2 = push("block.act2", Op::LeakyRelu(0.1), vec![gn]);
    let pool = push("down", Op::AvgPool([2; 3]), vec![a2]);
    let c3 = push("deep", Op::Conv(conv(&mut rng, 4, 4, 3, bias, dev)), vec![pool]);
    let up = push("up", Op::Upsample(Mode::Nearest), vec![c3]);
    let cat = push("cat", Op::Concat, vec![a2, up]);
    let head = push("head", Op::Conv(conv(&mut rng, 8, 3, 1, bias, dev)), vec![cat]);
    Graph { nodes, output: head, in_channels: 2, classes: 3 }
}

#[test]
fn lrp_0_conserves_relevance_through_sums_pools_and_unmerged_norms() {
    let dev = cpu_device("cpu").unwrap();
    let graph = residual_graph(false, &dev);
    graph.validate().unwrap();
    assert_eq!(graph.merges().iter().flatten().count(), 1, "norm1 merges into conv1; norm2 follows an add");
    let trace = graph.trace(random([1, 2, 8, 10, 12], 3, &dev));
    let composite = Composite::Epsilon { epsilon: 0.0 };
    let logits = trace.value(graph.output).clone();
    let whole = walk::Plan::new(&graph, &trace, &composite);
    for (class, voxel) in [(0, [2, 3, 4]), (2, [7, 9, 11])] {
        let e = walk::explain_target(&graph, &trace, &composite, class, voxel, Target::Logit);
        // The pass on the voxel's window equals the pass on the whole grid.
        let full = walk::propagate(&whole, start_for(&logits, class, voxel, Target::Logit));
        assert!(relative(&host(e.relevance.clone()), &host(full)) < 1e-5);
        let logit = host(e.logit.reshape([1, 1, 1, 1, 1]))[0];
        let total: f64 = host(e.relevance).iter().map(|v| *v as f64).sum();
        assert!(logit.abs() > 1e-3);
        assert!((total as f32 - logit).abs() < 1e-3 * logit.abs().max(1.0), "{total} vs {logit}");
    }
    // With biases the rule absorbs some: conservation must break (the check above can fail).
    let biased = residual_graph(true, &dev);
    let trace = biased.trace(random([1, 2, 8, 10, 12], 3, &dev));
    let e = walk::explain_target(&biased, &trace, &composite, 0, [2, 3, 4], Target::Logit);
    let logit = host(e.logit.reshape([1, 1, 1, 1, 1]))[0];
    let total: f64 = host(e.relevance).iter().map(|v| *v as f64).sum();
    assert!((total as f32 - logit).abs() > 1e-4, "biases absorb relevance");
}

#[test]
fn the_transpose_walk_is_the_adjoint_of_the_lrp_walk() {
    let dev = cpu_device("cpu").unwrap();
    for graph in [residual_graph(true, &dev), seglrp::model::unet::graph(&UNet::seeded(&variants()[2], 1, 0.1, &dev))] {
        let c = graph.in_channels;
        let trace = graph.trace(random([1, c, 8, 8, 12], 4, &dev));
        for (name, composite) in composites(c) {
            let plan = walk::Plan::new(&graph, &trace, &composite);
            let logits = trace.value(graph.output).clone();
            let r = random(logits.dims(), 5, &dev);
            let v = random(trace.input().dims(), 6, &dev);
            let lr = walk::propagate(&plan, r.clone());
            let ltv = walk::transpose(&plan, v.clone());
            let a: f64 = host(lr * v).iter().map(|x| *x as f64).sum();
            let b: f64 = host(r * ltv).iter().map(|x| *x as f64).sum();
            assert!((a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0), "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn a_graph_that_does_not_fit_together_is_refused_by_name() {
    let dev = cpu_device("cpu").unwrap();
    let mut graph = residual_graph(false, &dev);
    let mut rng = SplitMix::new(1);
    graph.nodes[3].op = Op::Conv(conv(&mut rng, 5, 4, 3, false, &dev));
    let err = graph.validate().unwrap_err();
    assert!(err.contains("\"block.conv1\" (Conv3d) reads 5 channels but receives 4"), "{err}");
    let _ = Param::from_tensor(Tensor::<1>::zeros([1], &dev));
}

/// The bundled liver model through the engine (each request on the nested windows of its
/// region) gives the maps of one whole-grid pass, on demo patient 1, for every composite: a
/// tumour voxel and the tumour as a region.
#[test]
fn the_bundled_models_maps_equal_the_whole_grid_pass() {
    use seglrp::engine;
    let dev = cpu_device("cpu").unwrap();
    let net = seglrp::model::weights::bundled(&dev).unwrap();
    let patient = seglrp::demo::phantom::cohort_patient(1);
    let vol = &patient.volume;
    let p = engine::prepare(&net, vol, &dev, PrepareOptions::default()).unwrap();
    let trace = p.whole().unwrap();
    let logits = trace.value(p.graph.output).clone();
    let padded = logits.dims();
    let [nx, ny, _] = vol.dims;
    let tumour: Vec<usize> = (0..patient.label.len()).filter(|i| patient.label[*i] != 0).collect();
    assert!(!tumour.is_empty());
    let i = tumour[tumour.len() / 2];
    let voxel = [i % nx, (i / nx) % ny, i / (nx * ny)];
    let region: Vec<u8> = patient.label.iter().map(|v| u8::from(*v != 0)).collect();
    let nz = vol.dims[2];
    let values: Vec<f32> = region.iter().map(|v| f32::from(*v)).collect();
    let mask = Tensor::<5>::from_data(TensorData::new(values, [1, 1, nz, ny, nx]), &dev);
    let mask = seglrp::model::graph::pad(mask, [0; 3], [padded[2] - nz, padded[3] - ny, padded[4] - nx]);
    let everything = ([0; 3], [padded[2] - 1, padded[3] - 1, padded[4] - 1]);
    for name in seglrp::lrp::composite::NAMES {
        let composite = engine::composite(name, &p).unwrap();
        let whole = walk::Plan::new(&p.graph, trace, &composite);
        let new = pollster::block_on(engine::explain(&p, voxel, 1, &composite)).unwrap().relevance;
        let old = walk::propagate(&whole, start_for(&logits, 1, [voxel[2], voxel[1], voxel[0]], Target::Logit));
        let err = relative(&new, &engine::crop(host(old), 6, padded, vol.dims));
        assert!(err < 1e-5, "{name}: voxel map {err}");
        let new = pollster::block_on(engine::explain_regions(&p, &[&region], Some(1), &composite, |_, _| {}))
            .unwrap()
            .remove(0);
        let old = rmap::region_map(&p.graph, trace, &composite, 1, mask.clone(), everything);
        let kept = host(old.kept).iter().filter(|v| **v > 0.5).count();
        assert_eq!(new.voxels - new.left_out, kept, "{name}");
        let err = relative(&new.relevance, &engine::crop(host(old.relevance), 6, padded, vol.dims));
        assert!(err < 1e-4, "{name}: region map {err}");
    }
}

/// A click on a windowed study computes each node only on its nested window (`Pass::around`)
/// and makes the rules one node at a time (`propagate_once`): the same map as the whole-volume
/// pass, for every composite, at the grid's border and inside, through residual sums, unmerged
/// group norms, PReLU, average pooling and both up-samplings, whole layers or slab by slab.
#[test]
fn a_click_on_nested_windows_equals_the_whole_pass() {
    use seglrp::spatial::crop::{refit, whole};
    let dev = cpu_device("cpu").unwrap();
    let full = [16, 20, 24];
    let x = random([1, 2, full[0], full[1], full[2]], 8, &dev);
    for mode in [Mode::Nearest, Mode::Trilinear] {
        let mut graph = residual_graph(true, &dev);
        let up = graph.nodes.iter().position(|n| n.name == "up").unwrap();
        graph.nodes[up].op = Op::Upsample(mode);
        let err = walk::Pass::around(&graph, x.clone(), vec![whole(full); graph.nodes.len()], full).unwrap_err();
        assert!(err.contains("\"block.norm1\""), "{err}");
        let (frozen, _) = graph.freeze(x.clone());
        let trace = frozen.trace(x.clone());
        for voxel in [[8, 10, 12], [0, 19, 23]] {
            let windows = walk::nested_windows(&frozen, voxel, voxel, full);
            if voxel == [8, 10, 12] {
                assert!(windows[frozen.output].voxels() * 8 < whole(full).voxels(), "{:?}", windows[frozen.output]);
            }
            for (name, composite) in composites(2) {
                let expected =
                    host(walk::explain_target(&frozen, &trace, &composite, 1, voxel, Target::Logit).relevance);
                // Whole layers per step, and slabs of one or two planes (rules run slab by slab).
                for slab_bytes in [walk::SLAB_BYTES, 1] {
                    let input = refit(x.clone(), &whole(full), &windows[0]);
                    let mut pass = walk::Pass::around(&frozen, input, windows.clone(), full).unwrap();
                    pass.slab_bytes = slab_bytes;
                    let logits = pass.logits(&frozen);
                    let at: [usize; 3] = std::array::from_fn(|k| voxel[k] - pass.output_window(&frozen).lo[k]);
                    let start = start_for(&logits, 1, at, Target::Logit);
                    let r = walk::propagate_once(&frozen, pass, &composite, &windows, start);
                    let got = host(refit(r, &windows[0], &whole(full)));
                    let d = relative(&got, &expected);
                    assert!(d < 1e-5, "{mode:?} {name} {voxel:?} slabs of {slab_bytes} bytes: {d}");
                }
            }
        }
    }
}
