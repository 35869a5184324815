//! Native checks of the engine's building blocks against plain loops, and LRP conservation.

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::lrp::rules::{relevance, Input, Linear};
use seglrp::lrp::{explain_target, Composite, Explanation, Rule, Target};
use seglrp::model::unet::{UNet, UNetConfig};
use seglrp::ops::pool::{max_pool3d, max_unpool3d};
use seglrp::rng::SplitMix;

fn random(shape: [usize; 5], seed: u64, device: &Device) -> (Vec<f32>, Tensor<5>) {
    let mut rng = SplitMix::new(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.symmetric(1.0)).collect();
    (v.clone(), Tensor::from_data(TensorData::new(v, shape), device))
}

fn host(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn max_pool3d_matches_a_naive_loop() {
    let dev = cpu_device("cpu").unwrap();
    let [n, c, d, h, w] = [2, 3, 4, 6, 8];
    let (x, t) = random([n, c, d, h, w], 7, &dev);
    let got = host(max_pool3d(t, [2; 3]));
    let mut want = Vec::new();
    for b in 0..n * c {
        for z in 0..d / 2 {
            for y in 0..h / 2 {
                for xx in 0..w / 2 {
                    let mut m = f32::NEG_INFINITY;
                    for (dz, dy, dx) in (0..8).map(|i| (i >> 2, (i >> 1) & 1, i & 1)) {
                        m = m.max(x[((b * d + 2 * z + dz) * h + 2 * y + dy) * w + 2 * xx + dx]);
                    }
                    want.push(m);
                }
            }
        }
    }
    assert_eq!(got, want);
}

#[test]
fn max_unpool3d_routes_relevance_to_the_winner_only() {
    let dev = cpu_device("cpu").unwrap();
    let shape = [1, 2, 4, 4, 6];
    let (x, t) = random(shape, 11, &dev);
    let (r, rt) = random([1, 2, 2, 2, 3], 12, &dev);
    let got = host(max_unpool3d(t, rt, [2; 3]));
    let [_, c, d, h, w] = shape;
    let mut want = vec![0f32; x.len()];
    let mut k = 0;
    for ch in 0..c {
        for z in 0..d / 2 {
            for y in 0..h / 2 {
                for xx in 0..w / 2 {
                    let idx =
                        |dz: usize, dy: usize, dx: usize| ((ch * d + 2 * z + dz) * h + 2 * y + dy) * w + 2 * xx + dx;
                    let best = (0..8)
                        .map(|i| idx(i >> 2, (i >> 1) & 1, i & 1))
                        .max_by(|a, b| x[*a].total_cmp(&x[*b]))
                        .unwrap();
                    want[best] = r[k];
                    k += 1;
                }
            }
        }
    }
    assert_eq!(got, want);
    // Relevance is only moved, never created or lost.
    assert!((got.iter().sum::<f32>() - r.iter().sum::<f32>()).abs() < 1e-5);
}

/// LRP-ε through a padded 3×3×3 convolution against the formula written out as loops:
/// R_i = x_i Σ_j w_ij R_j / (z_j + ε sgn₀(z_j)).
#[test]
fn epsilon_rule_matches_its_formula() {
    let dev = cpu_device("cpu").unwrap();
    let net = UNet::seeded(&UNetConfig::small(), 5, 0.3, &dev);
    let conv = &net.encoder[0][0].conv; // 6 -> 8 channels, k = 3, padding 1, with bias
    let [ci, co, d, h, w] = [6usize, 8usize, 3usize, 4usize, 5usize];
    let (x, xt) = random([1, ci, d, h, w], 21, &dev);
    let (r, rt) = random([1, co, d, h, w], 22, &dev);
    let eps = 0.01;
    let got = host(relevance(&Rule::Epsilon { epsilon: eps }, &Linear::conv(conv), xt, Input::Signed, rt));
    let wgt = host(conv.weight.val());
    let bias = conv.bias.as_ref().unwrap().val().into_data().try_into_vec::<f32>().unwrap();
    let xi = |c: usize, z: isize, y: isize, xx: isize| -> f32 {
        if z < 0 || y < 0 || xx < 0 || z >= d as isize || y >= h as isize || xx >= w as isize {
            0.0
        } else {
            x[((c * d + z as usize) * h + y as usize) * w + xx as usize]
        }
    };
    let wi = |o: usize, c: usize, kz: usize, ky: usize, kx: usize| wgt[(((o * ci + c) * 3 + kz) * 3 + ky) * 3 + kx];
    let mut want = vec![0f32; x.len()];
    for o in 0..co {
        for z in 0..d {
            for y in 0..h {
                for xx in 0..w {
                    let taps: Vec<(usize, isize, isize, isize, f32)> = (0..ci * 27)
                        .map(|t| {
                            let (c, k) = (t / 27, t % 27);
                            let (kz, ky, kx) = (k / 9, (k / 3) % 3, k % 3);
                            let (zz, yy, xq) = (
                                z as isize + kz as isize - 1,
                                y as isize + ky as isize - 1,
                                xx as isize + kx as isize - 1,
                            );
                            (c, zz, yy, xq, wi(o, c, kz, ky, kx))
                        })
                        .collect();
                    let zj: f32 = taps.iter().map(|&(c, a, b, e, wv)| xi(c, a, b, e) * wv).sum::<f32>() + bias[o];
                    let s = r[((o * d + z) * h + y) * w + xx] / (zj + eps * if zj >= 0.0 { 1.0 } else { -1.0 });
                    for &(c, a, b, e, wv) in &taps {
                        if xi(c, a, b, e) != 0.0 {
                            want[((c * d + a as usize) * h + b as usize) * w + e as usize] += xi(c, a, b, e) * wv * s;
                        }
                    }
                }
            }
        }
    }
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4 * scale, "max diff {diff} vs scale {scale}");
}

/// The map of `class` at `voxel` for a seeded small U-Net with biases scaled by `bias`.
fn explained(bias: f32, composite: &Composite, class: usize, voxel: [usize; 3]) -> Explanation {
    let dev = cpu_device("cpu").unwrap();
    let graph = seglrp::model::unet::graph(&UNet::seeded(&UNetConfig::small(), 3, bias, &dev));
    let (_, x) = random([1, 6, 8, 12, 10], 31, &dev);
    explain_target(&graph, &graph.trace(x), composite, class, voxel, Target::Logit)
}

/// With zero biases, LRP-0 (ε = 0) conserves relevance through every layer: the input
/// relevance sums to the explained logit.
#[test]
fn lrp_epsilon_conserves_the_logit_through_the_unet() {
    for (class, voxel) in [(1, [3, 5, 4]), (0, [7, 0, 9]), (1, [0, 11, 0])] {
        let lrp0 = Composite::Custom { default: Rule::lrp0(), layers: vec![] };
        let e = explained(0.0, &lrp0, class, voxel);
        let logit = e.logit.into_data().try_into_vec::<f32>().unwrap()[0];
        let total: f32 = host(e.relevance).iter().sum();
        assert!(logit.abs() > 1e-3, "degenerate logit {logit}");
        assert!(total.is_finite(), "LRP-0 divided by a zero output");
        assert!(
            (total - logit).abs() <= 1e-4 * logit.abs().max(1.0),
            "class {class} voxel {voxel:?}: Σ R = {total}, logit = {logit}"
        );
    }
}

/// A bias absorbs relevance, so the same check must fail once biases are present: this guards
/// the conservation test against passing for the wrong reason.
#[test]
fn biases_break_conservation_as_they_should() {
    let e = explained(0.5, &Composite::Epsilon { epsilon: 1e-9 }, 1, [3, 5, 4]);
    let logit = e.logit.into_data().try_into_vec::<f32>().unwrap()[0];
    let total: f32 = host(e.relevance).iter().sum();
    assert!((total - logit).abs() > 1e-3, "Σ R = {total}, logit = {logit}");
}

/// Rules skip their `x⁻` terms for inputs known to be ≥ 0 (after a ReLU) and fuse the
/// remaining convolutions: on such an input they must give what the general formula gives, for
/// convs and transposed convs, with positive and negative relevance.
#[test]
fn non_negative_inputs_take_the_short_path_to_the_same_relevance() {
    let dev = cpu_device("cpu").unwrap();
    let net = UNet::seeded(&UNetConfig::small(), 9, 0.4, &dev);
    let conv = Linear::conv(&net.encoder[1][0].conv); // 8 -> 16, k = 3
    let up = Linear::conv_transpose(net.ups[0].transposed.as_ref().unwrap()); // 16 -> 8, k = 2, stride 2
    let cases = [(conv, [1, 8, 4, 6, 5], [1, 16, 4, 6, 5]), (up, [1, 16, 3, 4, 2], [1, 8, 6, 8, 4])];
    for (layer, xs, rs) in cases {
        let (_, x) = random(xs, 41, &dev);
        let x = x.clamp_min(0.0); // half the inputs are exactly 0, as after a ReLU
        let (_, r) = random(rs, 42, &dev);
        for rule in [Rule::gamma(), Rule::zplus(), Rule::alpha2_beta1(), Rule::epsilon()] {
            let general = host(relevance(&rule, &layer, x.clone(), Input::Signed, r.clone()));
            let short = host(relevance(&rule, &layer, x.clone(), Input::NonNegative, r.clone()));
            let scale = general.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = general.iter().zip(&short).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(scale > 1e-3, "{rule:?}: a test that cannot fail (all relevance 0)");
            assert!(diff <= 1e-5 * scale, "{rule:?}: max diff {diff} of {scale}");
        }
    }
}
