//! Model weights in and out, and the architecture's variants on the CPU backend.

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::engine::PrepareOptions;
use seglrp::lrp::target::start_for;
use seglrp::lrp::{region_map as rmap, walk, Composite, Target};
use seglrp::model::graph::{Graph, Trace};
use seglrp::model::unet::{Activation, Down, NormKind, UNet, UNetConfig, Up};
use seglrp::model::weights::{config_of, from_safetensors, to_safetensors, ModelError};
use seglrp::ops::upsample::{upsample2, upsample2_adjoint, Mode};
use seglrp::rng::SplitMix;

fn variants() -> Vec<UNetConfig> {
    let base = UNetConfig::small();
    vec![
        base.clone(),
        UNetConfig {
            levels: 3,
            base_channels: 4,
            blocks: 2,
            norm: NormKind::Batch,
            down: Down::StridedConv,
            ..base.clone()
        },
        UNetConfig { levels: 3, base_channels: 4, blocks: 1, norm: NormKind::Instance, ..base.clone() },
        UNetConfig { levels: 1, base_channels: 4, ..base.clone() },
        UNetConfig {
            levels: 2,
            base_channels: 6,
            up: Up::Trilinear,
            activation: Activation::LeakyRelu,
            ..base.clone()
        },
        UNetConfig { levels: 3, base_channels: 4, norm: NormKind::Batch, up: Up::Nearest, ..base },
    ]
}

fn input(shape: [usize; 5], seed: u64, device: &Device) -> Tensor<5> {
    let mut rng = SplitMix::new(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.normal()).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn host(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// A seeded network of `cfg` as the engine's graph, and its forward pass on `x`.
fn traced(cfg: &UNetConfig, seed: u64, bias: f32, x: Tensor<5>) -> (Graph, Trace) {
    let graph = seglrp::model::unet::graph(&UNet::seeded(cfg, seed, bias, &x.device()));
    let trace = graph.trace(x);
    (graph, trace)
}

#[test]
fn safetensors_round_trip_gives_the_same_network() {
    let dev = cpu_device("cpu").unwrap();
    for cfg in variants() {
        let net = UNet::seeded(&cfg, 11, 0.2, &dev);
        let bytes = to_safetensors(&net);
        assert_eq!(config_of(&bytes).as_ref(), Some(&cfg));
        let back = from_safetensors(&cfg, &bytes, &dev).unwrap();
        let x = input([1, 6, 8, 8, 4], 5, &dev);
        assert_eq!(host(net.forward(x.clone())), host(back.forward(x)), "{cfg:?}");
    }
}

#[test]
fn mismatched_weights_are_refused_by_tensor_name() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = UNetConfig::small();
    let bytes = to_safetensors(&UNet::seeded(&cfg, 1, 0.1, &dev));
    let wider = UNetConfig { base_channels: 16, ..cfg.clone() };
    let err = from_safetensors(&wider, &bytes, &dev).unwrap_err();
    assert!(matches!(&err, ModelError::Shape { name, .. } if name == "encoder.0.0.conv.weight"), "{err}");
    let four = UNetConfig { in_channels: 4, ..cfg.clone() };
    let msg = from_safetensors(&four, &bytes, &dev).unwrap_err().to_string();
    assert!(msg.contains("4 input sequences expected, the weights take 6"), "{msg}");
    let deeper = UNetConfig { levels: 3, ..cfg.clone() };
    assert!(matches!(
        from_safetensors(&deeper, &bytes, &dev).unwrap_err(),
        ModelError::Shape { .. } | ModelError::Missing(_)
    ));
    let normed = UNetConfig { norm: NormKind::Batch, ..cfg.clone() };
    let err = from_safetensors(&normed, &bytes, &dev).unwrap_err();
    assert_eq!(err, ModelError::Missing("encoder.0.0.norm.weight".into()));
    let shallower = UNetConfig { levels: 1, ..cfg.clone() };
    let err = from_safetensors(&shallower, &bytes, &dev).unwrap_err();
    assert!(matches!(err, ModelError::Unexpected(_)), "{err}");
    assert!(matches!(from_safetensors(&cfg, b"not a model", &dev).unwrap_err(), ModelError::NotSafetensors(_)));
    let bad = UNetConfig { levels: 0, ..cfg.clone() };
    assert!(matches!(from_safetensors(&bad, &bytes, &dev).unwrap_err(), ModelError::Config(_)));
}

/// The two-pass region method rests on this: for a fixed forward pass every composite maps the
/// output relevance to the input relevance linearly.
#[test]
fn every_composite_is_linear_in_the_start_relevance() {
    let dev = cpu_device("cpu").unwrap();
    for cfg in variants() {
        let (graph, trace) = traced(&cfg, 3, 0.2, input([1, 6, 8, 8, 4], 9, &dev));
        let logits = trace.value(graph.output);
        let (a, b) = (start_for(logits, 1, [3, 2, 1], Target::Logit), start_for(logits, 0, [5, 6, 2], Target::Logit));
        let composites = Composite::NAMES.iter().map(|n| match Composite::by_name(n).unwrap() {
            Composite::EpsilonGammaBox { .. } => Composite::EpsilonGammaBox { low: vec![-3.0; 6], high: vec![3.0; 6] },
            c => c,
        });
        for c in composites {
            let plan = walk::Plan::new(&graph, &trace, &c);
            let sum = host(walk::propagate(&plan, a.clone() * 2.0 + b.clone()));
            let parts: Vec<f32> = host(walk::propagate(&plan, a.clone()))
                .iter()
                .zip(host(walk::propagate(&plan, b.clone())))
                .map(|(x, y)| 2.0 * x + y)
                .collect();
            let scale = parts.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = sum.iter().zip(&parts).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0 && diff <= 1e-5 * scale, "{cfg:?} {c:?}: diff {diff} scale {scale}");
        }
    }
}

/// The two-pass region map equals the per-voxel loop of Chlebus et al. 2019.
#[test]
fn two_pass_region_map_equals_the_per_voxel_loop() {
    let dev = cpu_device("cpu").unwrap();
    for cfg in variants().into_iter().take(3) {
        let (graph, trace) = traced(&cfg, 4, 0.2, input([1, 6, 8, 8, 8], 12, &dev));
        let voxels: Vec<[usize; 3]> =
            (2..5).flat_map(|d| (1..4).flat_map(move |h| (3..6).map(move |w| [d, h, w]))).collect();
        let mut mask = vec![0f32; 8 * 8 * 8];
        for [d, h, w] in &voxels {
            mask[(d * 8 + h) * 8 + w] = 1.0;
        }
        let region = Tensor::<5>::from_data(TensorData::new(mask, [1, 1, 8, 8, 8]), &dev);
        for c in [
            Composite::Epsilon { epsilon: 1e-6 },
            Composite::EpsilonAlpha2Beta1,
            Composite::EpsilonGammaBox { low: vec![-4.0; 6], high: vec![4.0; 6] },
        ] {
            let two = rmap::region_map(&graph, &trace, &c, 1, region.clone(), ([2, 1, 3], [4, 3, 5]));
            let (naive, left_out) = rmap::naive_region(&graph, &trace, &c, 1, &voxels);
            let kept: f32 = host(two.kept).iter().sum();
            assert_eq!(kept as usize + left_out, voxels.len());
            let (a, b) = (host(two.relevance), host(naive));
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            // Both methods divide by ΣM_a, a sum with cancellation (biases, α·positive −
            // β·negative), computed in float32 in different orders: they agree to ~1e-5 of
            // max|M_A|, up to 6e-5 here.
            assert!(scale > 0.0 && diff <= 1e-4 * scale, "{cfg:?} {c:?}: two-pass vs per-voxel {diff} of {scale}");
            // Each kept voxel contributes a map summing to 1.
            let total: f32 = a.iter().sum();
            assert!((total - kept).abs() <= 1e-3 * kept, "Σ M_A = {total}, kept {kept}");
        }
    }
}

#[test]
fn upsampling_matches_its_definition_and_its_adjoint_is_the_transpose() {
    let dev = cpu_device("cpu").unwrap();
    // Nearest: every voxel copied into its 2×2×2 block.
    let x =
        Tensor::<5>::from_data(TensorData::new((0..12).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 1, 3, 4]), &dev);
    let up = host(upsample2(x.clone(), Mode::Nearest));
    assert_eq!(up.len(), 2 * 6 * 8);
    for (i, v) in up.iter().enumerate() {
        let (w, h) = (i % 8, (i / 8) % 6);
        assert_eq!(*v, ((h / 2) * 4 + w / 2) as f32);
    }
    // Trilinear, align_corners=False, along one axis of [0, 1, 2, 3]: PyTorch gives
    // [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3].
    let row = Tensor::<5>::from_data(TensorData::new(vec![0.0f32, 1.0, 2.0, 3.0], [1, 1, 1, 1, 4]), &dev);
    let up = host(upsample2(row, Mode::Trilinear));
    assert_eq!(&up[..8], &[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
    // ⟨up(x), g⟩ = ⟨x, upᵀ(g)⟩ for both modes, odd sizes included.
    for mode in [Mode::Nearest, Mode::Trilinear] {
        let x = input([1, 2, 3, 5, 1], 1, &dev);
        let g = input([1, 2, 6, 10, 2], 2, &dev);
        let lhs: f32 = host(upsample2(x.clone(), mode)).iter().zip(host(g.clone())).map(|(a, b)| a * b).sum();
        let rhs: f32 = host(x).iter().zip(host(upsample2_adjoint(g, mode))).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0), "{mode:?}: {lhs} vs {rhs}");
    }
}

/// The bundled weights with each tensor passed through `edit(name, dtype, bytes)`.
fn rewritten(edit: impl Fn(&str, safetensors::Dtype, Vec<u8>) -> (safetensors::Dtype, Vec<u8>)) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(seglrp::model::weights::BUNDLED).unwrap();
    let parts: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let (d, b) = edit(&n, v.dtype(), v.data().to_vec());
            (n, d, v.shape().to_vec(), b)
        })
        .collect();
    let views =
        parts.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn integer_and_non_finite_weights_are_refused_by_tensor_name() {
    let dev = cpu_device("cpu").unwrap();
    let cfg = config_of(seglrp::model::weights::BUNDLED).expect("the bundled weights carry their configuration");
    let ints = rewritten(|n, d, b| if n == "head.bias" { (safetensors::Dtype::I32, b) } else { (d, b) });
    let err = from_safetensors(&cfg, &ints, &dev).unwrap_err();
    assert_eq!(err, ModelError::Dtype { name: "head.bias".into(), found: "I32".into() });
    assert!(err.to_string().contains("float32, float64 or float16"), "{err}");
    let nan = rewritten(|n, d, mut b| {
        if n == "encoder.0.0.conv.weight" {
            b[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        (d, b)
    });
    assert_eq!(
        from_safetensors(&cfg, &nan, &dev).unwrap_err(),
        ModelError::NonFinite("encoder.0.0.conv.weight".into())
    );
    // Unchanged, the same file loads (the edits above are the only problem).
    assert!(from_safetensors(&cfg, &rewritten(|_, d, b| (d, b)), &dev).is_ok());
}

/// The region map's conservation figure (Σ_a ΣM_a / Σ_a y_a over the kept voxels) is 1 with
/// LRP-0 and no biases and not 1 with biases; several regions sharing the first pass give what
/// each gives alone.
#[test]
fn region_conservation_and_shared_first_pass() {
    use seglrp::engine::{explain_regions, prepare};
    use seglrp::io::volume::Volume;
    use seglrp::lrp::Rule;
    let dev = cpu_device("cpu").unwrap();
    let dims = [10, 12, 8];
    let n: usize = dims.iter().product();
    let data = host(input([1, 6, 8, 12, 10], 21, &dev));
    let vol =
        Volume { dims, channels: 6, spacing: [1.0; 3], affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]), data };
    let lrp0 = Composite::Custom { default: Rule::lrp0(), layers: vec![] };
    let boxed = |x0: usize, x1: usize| -> Vec<u8> {
        (0..n).map(|i| u8::from((x0..x1).contains(&(i % 10)) && (i / 10) % 12 < 5)).collect()
    };
    let (a, b) = (boxed(1, 4), boxed(6, 9));
    for (bias, conserved) in [(0.0, true), (0.5, false)] {
        let net = UNet::seeded(&UNetConfig::small(), 3, bias, &dev);
        let p = prepare(
            &net,
            &vol,
            &dev,
            PrepareOptions::default().with_normalised(true).with_mode(seglrp::engine::Mode::Whole),
        )
        .unwrap();
        let both = pollster::block_on(explain_regions(&p, &[&a, &b], Some(1), &lrp0, |_, _| {})).unwrap();
        for (region, e) in [&a, &b].into_iter().zip(&both) {
            assert!(e.explained_logits.abs() > 1e-2, "degenerate logits {}", e.explained_logits);
            let off = (e.conservation - 1.0).abs();
            assert_eq!(
                off <= 1e-3,
                conserved,
                "bias {bias}: conservation {} ({} of {})",
                e.conservation,
                e.reached_input,
                e.explained_logits
            );
            let alone =
                pollster::block_on(explain_regions(&p, &[region], Some(1), &lrp0, |_, _| {})).unwrap().remove(0);
            assert_eq!((alone.voxels, alone.left_out), (e.voxels, e.left_out));
            let scale = alone.relevance.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = alone.relevance.iter().zip(&e.relevance).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0 && diff <= 1e-6 * scale, "shared first pass: {diff} of {scale}");
        }
        let a_share = both[0].shares.as_ref().expect("positive relevance").iter().sum::<f32>();
        assert!((a_share - 1.0).abs() < 1e-5, "shares sum to {a_share}");
    }
}

/// Receptive-field cropping (crop.rs) gives the uncropped map up to float rounding, for every
/// architecture variant (instance norm included: statistics from the full volume), for one
/// voxel at the centre and at the grid's edge, and for a region.
#[test]
fn cropped_lrp_equals_the_full_pass() {
    use seglrp::engine::{explain, explain_regions, prepare};
    use seglrp::io::volume::Volume;
    use seglrp::spatial::crop::window_around;
    let dev = cpu_device("cpu").unwrap();
    let dims = [128, 96, 16];
    let [nx, ny, nz] = dims;
    let n = nx * ny * nz;
    let data = host(input([1, 6, nz, ny, nx], 77, &dev));
    let vol =
        Volume { dims, channels: 6, spacing: [1.0; 3], affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]), data };
    let compare = |what: &str, cropped: &[f32], full: &[f32]| {
        let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = cropped.iter().zip(full).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0 && diff <= 1e-5 * scale, "{what}: cropped vs full {diff} of {scale}");
    };
    for cfg in variants() {
        let net = UNet::seeded(&cfg, 5, 0.2, &dev);
        let p = prepare(
            &net,
            &vol,
            &dev,
            PrepareOptions::default().with_normalised(true).with_mode(seglrp::engine::Mode::Whole),
        )
        .unwrap();
        let c = Composite::EpsilonGammaBox { low: p.low.clone(), high: p.high.clone() };
        // The whole-volume forward pass and every node on the whole grid: the oracle below.
        let (graph, trace) = (&p.graph, p.whole().unwrap());
        let logits = trace.value(graph.output);
        let padded = logits.dims();
        let whole = walk::Plan::new(graph, trace, &c);
        // Near the centre and at an edge, the voxel whose head input is largest (a voxel
        // whose features are all cut by ReLU has no relevance to compare).
        let head_input = trace.value(graph.nodes[graph.output].inputs[0]);
        let head = host(head_input.clone());
        let [_, ch, pz, py, px] = head_input.dims();
        let activity =
            |[x, y, z]: [usize; 3]| (0..ch).map(|c| head[((c * pz + z) * py + y) * px + x].abs()).sum::<f32>();
        let pick = |xs: std::ops::Range<usize>, ys: std::ops::Range<usize>, zs: std::ops::Range<usize>| {
            let mut all = Vec::new();
            for z in zs {
                for y in ys.clone() {
                    for x in xs.clone() {
                        all.push([x, y, z]);
                    }
                }
            }
            all.into_iter().max_by(|a, b| activity(*a).total_cmp(&activity(*b))).unwrap()
        };
        for voxel in [pick(60..68, 44..52, 6..10), pick(0..4, 92..96, 13..16)] {
            let at = [voxel[2], voxel[1], voxel[0]];
            assert!(
                window_around(graph, at, at, [nz, ny, nx]).voxels() * 10 < n * 9,
                "{cfg:?}: the test grid must be larger than the window"
            );
            let cropped = pollster::block_on(explain(&p, voxel, 1, &c)).unwrap();
            // The oracle: every node on the whole grid.
            let full = walk::propagate(&whole, start_for(logits, 1, at, Target::Logit));
            let full = seglrp::engine::crop(host(full), 6, padded, dims);
            // explain_target, on nested windows of the whole grid, is the same map.
            let nested = walk::explain_target(graph, trace, &c, 1, at, Target::Logit).relevance;
            let nested = seglrp::engine::crop(host(nested), 6, padded, dims);
            compare(&format!("{cfg:?} voxel {voxel:?} nested"), &nested, &full);
            compare(&format!("{cfg:?} voxel {voxel:?}"), &cropped.relevance, &full);
        }
        let region: Vec<u8> = (0..n)
            .map(|i| {
                u8::from(
                    (100..104).contains(&(i % nx))
                        && (20..23).contains(&((i / nx) % ny))
                        && (3..5).contains(&(i / (nx * ny))),
                )
            })
            .collect();
        let cropped = pollster::block_on(explain_regions(&p, &[&region], Some(1), &c, |_, _| {})).unwrap().remove(0);
        let mask = Tensor::<5>::from_data(
            TensorData::new(region.iter().map(|v| f32::from(*v)).collect::<Vec<_>>(), [1, 1, nz, ny, nx]),
            &dev,
        );
        let full = rmap::region_map(graph, trace, &c, 1, mask, ([0; 3], [nz - 1, ny - 1, nx - 1]));
        let kept = host(full.kept).iter().filter(|v| **v > 0.5).count();
        assert_eq!(cropped.voxels - cropped.left_out, kept, "{cfg:?}: the same voxels kept");
        compare(
            &format!("{cfg:?} region"),
            &cropped.relevance,
            &seglrp::engine::crop(host(full.relevance), 6, padded, dims),
        );
    }
}

/// The two passes of a region map on nested windows around the region (`Plan::around`) give
/// the whole-grid passes' column sums inside the region and the same map, for every variant and
/// a region touching the grid's edge.
#[test]
fn nested_windows_give_the_whole_grids_region_map() {
    use seglrp::lrp::region_map::column_sums;
    use seglrp::spatial::crop::{refit, whole};
    let dev = cpu_device("cpu").unwrap();
    let [d, h, w] = [16, 48, 64];
    let all = whole([d, h, w]);
    for cfg in variants() {
        let (graph, trace) = traced(&cfg, 9, 0.2, input([1, 6, d, h, w], 21, &dev));
        let pass = walk::Pass::whole(&trace);
        let c = Composite::EpsilonGammaBox { low: vec![-3.0; 6], high: vec![3.0; 6] };
        for (first, last) in [([6, 20, 30], [8, 23, 33]), ([0, 44, 0], [2, 47, 3])] {
            let inside = |i: usize| {
                let p = [i / (h * w), (i / w) % h, i % w];
                (0..3).all(|k| first[k] <= p[k] && p[k] <= last[k])
            };
            let everywhere = walk::Plan::new(&graph, &trace, &c);
            let nested = walk::Plan::around(&graph, &trace, &c, first, last);
            let (out, inp) = (nested.output_window(), nested.input_window());
            let a = host(column_sums(&everywhere, &pass));
            let b = host(refit(column_sums(&nested, &pass), &out, &all));
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = (0..a.len()).filter(|i| inside(i % (d * h * w))).fold(0f32, |m, i| m.max((a[i] - b[i]).abs()));
            assert!(scale > 0.0 && diff <= 1e-5 * scale, "{cfg:?} {first:?}: column sums {diff} of {scale}");
            let r = input([1, 2, d, h, w], 22, &dev);
            let mask: Vec<f32> = (0..2 * d * h * w).map(|i| f32::from(u8::from(inside(i % (d * h * w))))).collect();
            let r = r * Tensor::<5>::from_data(TensorData::new(mask, [1, 2, d, h, w]), &dev);
            let (x, y) = (
                host(walk::propagate(&everywhere, r.clone())),
                host(refit(walk::propagate(&nested, refit(r, &all, &out)), &inp, &all)),
            );
            let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = x.iter().zip(&y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(scale > 0.0 && diff <= 1e-5 * scale, "{cfg:?} {first:?}: maps {diff} of {scale}");
        }
    }
}

/// A windowed study (tiling.rs: forward passes on windows of the host-held input) gives the
/// whole-volume pass's segmentation, voxel maps and region maps — also when the region is
/// split into cores whose maps are added — for every variant; instance norm's statistics are
/// frozen by one whole-volume pass first (`Graph::freeze`).
#[test]
fn windowed_study_equals_the_whole_pass() {
    use seglrp::engine::{explain, explain_regions, prepare, segmentation, Mode};
    use seglrp::io::volume::Volume;
    let dev = cpu_device("cpu").unwrap();
    let dims = [128, 96, 16];
    let [nx, ny, nz] = dims;
    let n = nx * ny * nz;
    let data = host(input([1, 6, nz, ny, nx], 78, &dev));
    let vol =
        Volume { dims, channels: 6, spacing: [1.0; 3], affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]), data };
    // Instance norm: the region's cores sum float32 values of near-cancelling merged convs.
    let compare = |what: &str, windowed: &[f32], whole: &[f32], bound: f32| {
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = windowed.iter().zip(whole).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0 && diff <= bound * scale, "{what}: windowed vs whole {diff} of {scale}");
    };
    // A region across the grid's middle: split into several cores at this window size.
    let region: Vec<u8> = (0..n)
        .map(|i| {
            u8::from(
                (40..90).contains(&(i % nx))
                    && (30..60).contains(&((i / nx) % ny))
                    && (4..12).contains(&(i / (nx * ny))),
            )
        })
        .collect();
    for cfg in variants() {
        let net = UNet::seeded(&cfg, 6, 0.2, &dev);
        // Windows of a core of 8×16×24 voxels: the region then needs several.
        let graph = seglrp::model::unet::graph(&net);
        let max_window = seglrp::spatial::crop::window_around(&graph, [4, 40, 60], [11, 55, 83], [nz, ny, nx]).voxels();
        let whole = prepare(&net, &vol, &dev, PrepareOptions::default().with_mode(Mode::Whole)).unwrap();
        let windowed =
            prepare(&net, &vol, &dev, PrepareOptions::default().with_mode(Mode::Windowed(max_window))).unwrap();
        assert!(windowed.windowed() && windowed.whole().is_none());
        let cores =
            seglrp::spatial::tiling::cores(&windowed.graph, [4, 30, 40], [11, 59, 89], windowed.padded, max_window);
        assert!(cfg.levels == 1 || cores.len() > 1, "{cfg:?}: the region should need several cores, got {cores:?}");
        let a = pollster::block_on(segmentation(&whole)).unwrap();
        let b = pollster::block_on(segmentation(&windowed)).unwrap();
        assert_eq!(
            a.iter().filter(|v| **v != 0).count(),
            b.iter().filter(|v| **v != 0).count(),
            "{cfg:?}: tumour voxels"
        );
        assert!(a == b, "{cfg:?}: segmentations differ");
        let c = Composite::EpsilonGammaBox { low: whole.low.clone(), high: whole.high.clone() };
        for voxel in [[64, 48, 8], [1, 94, 15]] {
            let x = pollster::block_on(explain(&whole, voxel, 1, &c)).unwrap();
            let y = pollster::block_on(explain(&windowed, voxel, 1, &c)).unwrap();
            compare(&format!("{cfg:?} voxel {voxel:?}"), &y.relevance, &x.relevance, 1e-5);
        }
        let x = pollster::block_on(explain_regions(&whole, &[&region], Some(1), &c, |_, _| {})).unwrap().remove(0);
        let y = pollster::block_on(explain_regions(&windowed, &[&region], Some(1), &c, |_, _| {})).unwrap().remove(0);
        assert_eq!((x.voxels, x.left_out), (y.voxels, y.left_out), "{cfg:?}: the same voxels kept");
        assert!(
            (x.explained_logits - y.explained_logits).abs() <= 1e-4 * x.explained_logits.abs().max(1.0),
            "{cfg:?}: explained logits"
        );
        // The region's cores are explained one by one and their maps added in float32: the sum
        // of maps, not the map of the sum. Measured: up to 1.6e-5 of the largest value with the
        // AVX2+FMA conv loop (fused multiply-adds round once where the 4-lane loop rounds twice).
        compare(&format!("{cfg:?} region"), &y.relevance, &x.relevance, 5e-5);
    }
}

/// "All foreground" explains each region voxel for its own class in the same two passes: on a
/// three-class network, the region whose bytes hold class 1 in one box and class 2 in another
/// gives the sum of the two boxes' region maps, each for its class.
#[test]
fn all_foreground_is_the_sum_of_each_class_region_map() {
    use seglrp::engine::{explain_regions, prepare};
    use seglrp::io::volume::Volume;
    let dev = cpu_device("cpu").unwrap();
    let dims = [10, 12, 8];
    let n: usize = dims.iter().product();
    let data = host(input([1, 6, 8, 12, 10], 23, &dev));
    let vol =
        Volume { dims, channels: 6, spacing: [1.0; 3], affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]), data };
    let net = UNet::seeded(&UNetConfig { classes: 3, ..UNetConfig::small() }, 5, 0.1, &dev);
    let opts = PrepareOptions::default().with_normalised(true).with_mode(seglrp::engine::Mode::Whole);
    let p = prepare(&net, &vol, &dev, opts).unwrap();
    let boxed = |x0: usize, x1: usize, v: u8| -> Vec<u8> {
        (0..n).map(|i| if (x0..x1).contains(&(i % 10)) && (i / 10) % 12 < 5 { v } else { 0 }).collect()
    };
    let (a, b) = (boxed(1, 4, 1), boxed(6, 9, 2));
    let both: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let c = Composite::Epsilon { epsilon: 1e-6 };
    let run = |region: &[u8], class| pollster::block_on(explain_regions(&p, &[region], class, &c, |_, _| {}));
    let all = run(&both, None).unwrap().remove(0);
    let (one, two) = (run(&a, Some(1)).unwrap().remove(0), run(&b, Some(2)).unwrap().remove(0));
    assert_eq!((all.class, all.voxels), (None, one.voxels + two.voxels));
    // The same voxels left out (each |ΣM_a| measured against the largest of the whole region).
    assert_eq!(all.left_out, one.left_out + two.left_out);
    let sum: Vec<f32> = one.relevance.iter().zip(&two.relevance).map(|(x, y)| x + y).collect();
    let scale = sum.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = all.relevance.iter().zip(&sum).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 0.0 && diff <= 1e-5 * scale, "all foreground vs the two classes' maps: {diff} of {scale}");
    let logits = one.explained_logits + two.explained_logits;
    assert!(
        (all.explained_logits - logits).abs() <= 1e-4 * logits.abs().max(1.0),
        "{} vs {logits}",
        all.explained_logits
    );
    // A region byte naming a class the model lacks is refused in words.
    let err = run(&boxed(1, 4, 3), None).unwrap_err();
    assert!(err.contains("class 3 does not exist"), "{err}");
}
