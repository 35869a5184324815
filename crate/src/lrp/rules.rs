//! LRP rules for linear layers (3D convolutions and transposed convolutions), with the
//! formulas of Zennit's `rules.py`.
//!
//! Zennit writes every rule as a sum of terms: modify the input (`x⁺ = max(x, 0)`,
//! `x⁻ = min(x, 0)`, `1`, …) and the parameters (`w⁺`, `w⁻`, `w²`, …), run the layer forward to
//! get the term's output `zₖ`, divide the incoming relevance by a stabilised sum of outputs,
//! send the quotient back through the transposed layer with the term's weights (the gradient
//! with respect to the input), and combine the terms. Below, `Wᵀ` is that transposed map,
//! `stab(z) = z + ε·sgn₀(z)` with `sgn₀(0) = +1` (Zennit's `Stabilizer`), and the bias `b` is
//! part of the forward output unless a rule says otherwise.
//!
//! ReLU and other activations use Zennit's `Pass`: relevance goes through unchanged (the
//! walk in `lrp/walk.rs` does this).

use crate::ops::conv::{conv3d, conv_padding, conv_transpose3d};
use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use serde::{Deserialize, Serialize};

/// Zennit's stabiliser: `z + ε·sgn₀(z)` with `sgn₀(0) = +1`, so the divisor is never 0
/// (for ε > 0).
pub fn stabilise(z: Tensor<5>, eps: f32) -> Tensor<5> {
    let sign0 = z.clone().greater_equal_elem(0.0).float() * 2.0 - 1.0;
    z + sign0 * eps
}

#[derive(Clone, Debug)]
enum Mapping {
    Conv { stride: [usize; 3], padding: [usize; 3], dilation: [usize; 3] },
    ConvTranspose { stride: [usize; 3], padding: [usize; 3], padding_out: [usize; 3], dilation: [usize; 3] },
}

/// A linear layer as LRP sees it: weights and bias (after canonization, see `model::graph::merge`)
/// and the map they define.
#[derive(Clone, Debug)]
pub struct Linear {
    mapping: Mapping,
    pub weight: Tensor<5>,
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    pub fn conv(conv: &Conv3d) -> Linear {
        assert_eq!(conv.groups, 1, "grouped convolutions are not supported");
        Linear {
            mapping: Mapping::Conv { stride: conv.stride, padding: conv_padding(conv), dilation: conv.dilation },
            weight: conv.weight.val(),
            bias: conv.bias.as_ref().map(|b| b.val()),
        }
    }

    pub fn conv_transpose(up: &ConvTranspose3d) -> Linear {
        assert_eq!(up.groups, 1, "grouped convolutions are not supported");
        Linear {
            mapping: Mapping::ConvTranspose {
                stride: up.stride,
                padding: up.padding,
                padding_out: up.padding_out,
                dilation: up.dilation,
            },
            weight: up.weight.val(),
            bias: up.bias.as_ref().map(|b| b.val()),
        }
    }

    /// A graph node's convolution or transposed convolution (`model/graph.rs`).
    pub fn from_spec(c: &crate::model::graph::ConvSpec) -> Linear {
        let mapping = if c.transposed {
            Mapping::ConvTranspose {
                stride: c.stride,
                padding: c.padding,
                padding_out: c.output_padding,
                dilation: [1; 3],
            }
        } else {
            Mapping::Conv { stride: c.stride, padding: c.padding, dilation: [1; 3] }
        };
        Linear { mapping, weight: c.weight.clone(), bias: c.bias.clone() }
    }

    /// Same map, other parameters.
    pub fn with(&self, weight: Tensor<5>, bias: Option<Tensor<1>>) -> Linear {
        Linear { mapping: self.mapping.clone(), weight, bias }
    }

    /// Output-channel axis of the weights: 0 for convs, 1 for transposed convs.
    pub fn out_axis(&self) -> usize {
        match self.mapping {
            Mapping::Conv { .. } => 0,
            Mapping::ConvTranspose { .. } => 1,
        }
    }

    /// `z = x ⋆ w + b` with the given (modified) parameters.
    fn forward(&self, x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>) -> Tensor<5> {
        match self.mapping {
            Mapping::Conv { stride, padding, dilation } => {
                conv3d(x, w, b, ConvOptions::new(stride, padding, dilation, 1))
            }
            Mapping::ConvTranspose { stride, padding, padding_out, dilation } => {
                conv_transpose3d(x, w, b, ConvTransposeOptions::new(stride, padding, padding_out, dilation, 1))
            }
        }
    }

    /// `Wᵀ g`: the gradient of the map with respect to its input (shape `in_dims`).
    fn backward(&self, g: Tensor<5>, w: Tensor<5>, in_dims: [usize; 5]) -> Tensor<5> {
        match self.mapping {
            Mapping::Conv { stride, padding, dilation } => {
                let out = g.dims();
                let kernel = w.dims();
                // Rows a strided conv dropped at the end come back as `padding_out`.
                let padding_out: [usize; 3] = std::array::from_fn(|i| {
                    let produced = (out[i + 2] - 1) * stride[i] + dilation[i] * (kernel[i + 2] - 1) + 1;
                    (in_dims[i + 2] + 2 * padding[i]).saturating_sub(produced)
                });
                conv_transpose3d(g, w, None, ConvTransposeOptions::new(stride, padding, padding_out, dilation, 1))
            }
            Mapping::ConvTranspose { stride, padding, dilation, .. } => {
                conv3d(g, w, None, ConvOptions::new(stride, padding, dilation, 1))
            }
        }
    }
}

/// An LRP rule for a linear layer; parameters as in Zennit (defaults: ε = stabiliser = 1e-6,
/// γ = 0.25).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Zennit `Epsilon`; ε = 0 is LRP-0:
    ///
    /// `R_i = x_i · Σ_j w_ij R_j / stab(z_j)`, `z_j = Σ_i x_i w_ij + b_j`.
    ///
    /// For ε = 0 an output with `z_j = 0` passes nothing on (`R_j / z_j := 0`), where Zennit
    /// would give NaN.
    Epsilon { epsilon: f32 },
    /// Zennit `Gamma` (generalised to negative inputs), on weights and bias:
    ///
    /// `w↑ = w + γw⁺`, `w↓ = w + γw⁻`, `b↑ = b + γb⁺`, `b↓ = b + γb⁻`;
    /// `z↑ = x⁺ w↑ + b↑ + x⁻ w↓`, `z↓ = x⁺ w↓ + b↓ + x⁻ w↑`, `z = x w + b`;
    /// `s↑ = [z > 0] R / stab(z↑)`, `s↓ = [z < 0] R / stab(z↓)`;
    /// `R_in = x⁺ (w↑ᵀ s↑ + w↓ᵀ s↓) + x⁻ (w↓ᵀ s↑ + w↑ᵀ s↓)`.
    Gamma { gamma: f32, stabilizer: f32 },
    /// Zennit `ZPlus` (α = 1, β = 0, negative inputs allowed):
    ///
    /// `z = x⁺ w⁺ + b⁺ + x⁻ w⁻`, `s = R / stab(z)`, `R_in = x⁺ (w⁺ᵀ s) + x⁻ (w⁻ᵀ s)`.
    ZPlus { stabilizer: f32 },
    /// Zennit `AlphaBeta`, α − β = 1:
    ///
    /// `z⁺ = x⁺ w⁺ + b⁺ + x⁻ w⁻`, `z⁻ = x⁺ w⁻ + b⁻ + x⁻ w⁺`,
    /// `R_in = α (x⁺ w⁺ᵀ + x⁻ w⁻ᵀ) R / stab(z⁺) − β (x⁺ w⁻ᵀ + x⁻ w⁺ᵀ) R / stab(z⁻)`.
    AlphaBeta { alpha: f32, beta: f32, stabilizer: f32 },
    /// Zennit `ZBox`, with per-input-channel bounds `l ≤ x ≤ h`:
    ///
    /// `z = x w + b − (l w⁺ + b⁺) − (h w⁻ + b⁻)`, `s = R / stab(z)`,
    /// `R_in = x (wᵀ s) − l (w⁺ᵀ s) − h (w⁻ᵀ s)`.
    ZBox { low: Vec<f32>, high: Vec<f32>, stabilizer: f32 },
    /// Zennit `Flat`: all inputs and weights 1, no bias:
    ///
    /// `z = 1 ⋆ 1`, `R_in = 1ᵀ (R / stab(z))`.
    Flat { stabilizer: f32 },
    /// Zennit `WSquare`: inputs 1, squared weights and bias:
    ///
    /// `z = 1 ⋆ w² + b²`, `R_in = (w²)ᵀ (R / stab(z))`.
    WSquare { stabilizer: f32 },
    /// No rule: the layer's gradient, what Zennit's attributors compute with no composite
    /// (the gradient-based methods of `faithfulness::methods`):
    ///
    /// `R_in = Wᵀ R`.
    Gradient,
}

pub const DEFAULT_EPSILON: f32 = 1e-6;

impl Rule {
    pub fn lrp0() -> Rule {
        Rule::Epsilon { epsilon: 0.0 }
    }
    pub fn epsilon() -> Rule {
        Rule::Epsilon { epsilon: DEFAULT_EPSILON }
    }
    pub fn gamma() -> Rule {
        Rule::Gamma { gamma: 0.25, stabilizer: DEFAULT_EPSILON }
    }
    pub fn zplus() -> Rule {
        Rule::ZPlus { stabilizer: DEFAULT_EPSILON }
    }
    pub fn alpha2_beta1() -> Rule {
        Rule::AlphaBeta { alpha: 2.0, beta: 1.0, stabilizer: DEFAULT_EPSILON }
    }
    pub fn flat() -> Rule {
        Rule::Flat { stabilizer: DEFAULT_EPSILON }
    }
    pub fn wsquare() -> Rule {
        Rule::WSquare { stabilizer: DEFAULT_EPSILON }
    }

    /// Refuses what Zennit refuses (α − β ≠ 1, negative α or β) and mis-sized ZBox bounds.
    pub fn validate(&self, in_channels: usize) -> Result<(), String> {
        match self {
            Rule::AlphaBeta { alpha, beta, .. } if *alpha < 0.0 || *beta < 0.0 || (alpha - beta - 1.0).abs() > 1e-6 => {
                Err(format!("AlphaBeta needs α, β ≥ 0 and α − β = 1 (got α = {alpha}, β = {beta})"))
            }
            Rule::ZBox { low, high, .. } if low.len() != in_channels || high.len() != in_channels => Err(format!(
                "ZBox needs one low and one high bound per input channel ({in_channels}); got {} and {}",
                low.len(),
                high.len()
            )),
            _ => Ok(()),
        }
    }
}

fn pos5(t: &Tensor<5>) -> Tensor<5> {
    t.clone().clamp_min(0.0)
}
fn neg5(t: &Tensor<5>) -> Tensor<5> {
    t.clone().clamp_max(0.0)
}
fn pos1(b: &Option<Tensor<1>>) -> Option<Tensor<1>> {
    b.as_ref().map(|b| b.clone().clamp_min(0.0))
}
fn neg1(b: &Option<Tensor<1>>) -> Option<Tensor<1>> {
    b.as_ref().map(|b| b.clone().clamp_max(0.0))
}

/// Per-input-channel values `v` shaped to scale the weights `w` of `layer` (input channels on
/// axis 1 of a conv's weights, axis 0 of a transposed conv's).
fn channel_factors(v: &[f32], w: &Tensor<5>, layer: &Linear) -> Tensor<5> {
    let c = v.len();
    let t = Tensor::<1>::from_data(burn::tensor::TensorData::new(v.to_vec(), [c]), &w.device());
    if layer.out_axis() == 0 {
        t.reshape([1, c, 1, 1, 1])
    } else {
        t.reshape([c, 1, 1, 1, 1])
    }
}

/// What is known of a layer's input before looking at it. A ReLU's output has no negative
/// part, so every `x⁻` term of a rule is exactly zero there: [`PreparedRule`] then skips those
/// convolutions and the result is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Signed,
    NonNegative,
}

/// A rule applied to one layer for one forward pass, as the linear map it is:
///
/// `R_in = Σ_g a_g ⊙ Σ_{k∈g} W_kᵀ (d_k ⊙ R)`
///
/// with input factors `a_g` (`x`, `x⁺`, `x⁻`, `−l`, `−h`, or none for 1), weights `W_k` and
/// output factors `d_k` (the rule's `1 / stab(z_k)`, with its gates and α, β folded in). Nothing
/// here depends on `R`: several passes through one forward pass share it (a region map's two),
/// and its transpose is `Lᵀ v = Σ_g Σ_{k∈g} d_k ⊙ W_k (a_g ⊙ v)` (convolutions without bias),
/// which is how region maps get their column sums `Lᵀ1`. Terms sharing an input factor run as
/// one convolution (their weights concatenated along the output channels): CPU kernels are
/// faster on one larger product than on several small ones.
#[derive(Clone, Debug)]
pub struct PreparedRule {
    layer: Linear,
    in_dims: [usize; 5],
    groups: Vec<Group>,
}

#[derive(Clone, Debug)]
struct Group {
    /// `a_g`.
    input: Factor,
    /// `(W_k, d_k)`; no `d_k` is 1 (the gradient).
    terms: Vec<(Tensor<5>, Option<Tensor<5>>)>,
}

/// A group's input factor `a_g`: 1 (Flat, WSquare), `x`, or the part `x⁺` or `x⁻` of it, taken
/// when applied so that the signed rules' two groups share one tensor instead of holding two
/// (a click's largest layers hold one copy of `x` fewer).
#[derive(Clone, Debug)]
enum Factor {
    One,
    All(Tensor<5>),
    Pos(Tensor<5>),
    Neg(Tensor<5>),
}

impl Factor {
    fn times(&self, t: Tensor<5>) -> Tensor<5> {
        match self {
            Factor::One => t,
            Factor::All(x) => t * x.clone(),
            Factor::Pos(x) => t * pos5(x),
            Factor::Neg(x) => t * neg5(x),
        }
    }
}

/// Terms of a rule run as one convolution while their joined relevances take at most this
/// many bytes (faster on the CPU); beyond, one by one (less memory: a click on a large study).
const JOINED_BYTES: usize = 64 << 20;

/// `r ⊙ d`, or `r` where there is no factor.
fn scaled(r: Tensor<5>, d: &Option<Tensor<5>>) -> Tensor<5> {
    match d {
        Some(d) => r * d.clone(),
        None => r,
    }
}

/// `1 / stab(z)`, Zennit's stabilised divisor.
fn inverse(z: Tensor<5>, eps: f32) -> Tensor<5> {
    stabilise(z, eps).recip()
}

impl PreparedRule {
    /// The rule's map for layer `layer` reading `x`; `input` says whether `x` may be negative.
    pub fn new(rule: &Rule, layer: &Linear, x: Tensor<5>, input: Input) -> PreparedRule {
        PreparedRule::with_output(rule, layer, x, input, None)
    }

    /// [`PreparedRule::new`] given also the layer's output `z = x ⋆ w + b` where the forward pass
    /// kept it: the rules that need `z` itself (ε, Gamma after a ReLU) skip that convolution.
    pub fn with_output(rule: &Rule, layer: &Linear, x: Tensor<5>, input: Input, z: Option<Tensor<5>>) -> PreparedRule {
        let (w, b) = (layer.weight.clone(), layer.bias.clone());
        let output = |x: &Tensor<5>, w: &Tensor<5>, b: Option<Tensor<1>>| {
            z.clone().unwrap_or_else(|| layer.forward(x.clone(), w.clone(), b))
        };
        let in_dims = x.dims();
        let nonneg = input == Input::NonNegative;
        let group = |input: Factor, terms: Vec<(Tensor<5>, Tensor<5>)>| Group {
            input,
            terms: terms.into_iter().map(|(w, d)| (w, Some(d))).collect(),
        };
        let groups = match rule {
            Rule::Gradient => vec![Group { input: Factor::One, terms: vec![(w, None)] }],
            Rule::Epsilon { epsilon } if *epsilon == 0.0 => {
                let z = output(&x, &w, b);
                // An output with z = 0 passes nothing on (instead of Zennit's NaN).
                let zero = z.clone().equal_elem(0.0).float();
                let d = (zero.ones_like() - zero.clone()) / (z + zero);
                vec![group(Factor::All(x), vec![(w, d)])]
            }
            Rule::Epsilon { epsilon } => {
                let d = inverse(output(&x, &w, b), *epsilon);
                vec![group(Factor::All(x), vec![(w, d)])]
            }
            Rule::ZPlus { stabilizer } if nonneg => {
                let wp = pos5(&w);
                let d = inverse(layer.forward(x.clone(), wp.clone(), pos1(&b)), *stabilizer);
                vec![group(Factor::All(x), vec![(wp, d)])]
            }
            Rule::ZPlus { stabilizer } => {
                // x⁺ and x⁻ made one at a time (a large layer's input is not held three times).
                let (wp, wn) = (pos5(&w), neg5(&w));
                let z = layer.forward(pos5(&x), wp.clone(), pos1(&b)) + layer.forward(neg5(&x), wn.clone(), None);
                let d = inverse(z, *stabilizer);
                vec![group(Factor::Pos(x.clone()), vec![(wp, d.clone())]), group(Factor::Neg(x.clone()), vec![(wn, d)])]
            }
            Rule::AlphaBeta { alpha, beta, stabilizer } if nonneg => {
                let (wp, wn) = (pos5(&w), neg5(&w));
                let [zp, zn]: [Tensor<5>; 2] =
                    forward_many(layer, x.clone(), vec![(wp.clone(), pos1(&b)), (wn.clone(), neg1(&b))])
                        .try_into()
                        .expect("two");
                let (dp, dn) = (inverse(zp, *stabilizer) * *alpha, inverse(zn, *stabilizer) * -*beta);
                vec![group(Factor::All(x), vec![(wp, dp), (wn, dn)])]
            }
            Rule::AlphaBeta { alpha, beta, stabilizer } => {
                let (xp, xn, wp, wn) = (pos5(&x), neg5(&x), pos5(&w), neg5(&w));
                let zp = layer.forward(xp.clone(), wp.clone(), pos1(&b)) + layer.forward(xn.clone(), wn.clone(), None);
                let zn = layer.forward(xp.clone(), wn.clone(), neg1(&b)) + layer.forward(xn.clone(), wp.clone(), None);
                let (dp, dn) = (inverse(zp, *stabilizer) * *alpha, inverse(zn, *stabilizer) * -*beta);
                vec![
                    group(Factor::Pos(x.clone()), vec![(wp.clone(), dp.clone()), (wn.clone(), dn.clone())]),
                    group(Factor::Neg(x.clone()), vec![(wn, dp), (wp, dn)]),
                ]
            }
            Rule::Gamma { gamma, stabilizer } => {
                let w_up = w.clone() + pos5(&w) * *gamma;
                let w_down = w.clone() + neg5(&w) * *gamma;
                if nonneg {
                    // x⁻ = 0: z↑ = x w↑ + b↑, z↓ = x w↓ + b↓, R_in = x (w↑ᵀ s↑ + w↓ᵀ s↓). Two
                    // convolutions give all three outputs: with p = x w⁺ + b⁺ (so x w⁻ + b⁻ =
                    // z − p), z↑ = z + γp and z↓ = z + γ(z − p).
                    let [z, p]: [Tensor<5>; 2] = match &z {
                        Some(z) => [z.clone(), layer.forward(x.clone(), pos5(&w), pos1(&b))],
                        None => forward_many(layer, x.clone(), vec![(w.clone(), b.clone()), (pos5(&w), pos1(&b))])
                            .try_into()
                            .expect("two"),
                    };
                    let z_up = z.clone() + p.clone() * *gamma;
                    let z_down = z.clone() + (z.clone() - p) * *gamma;
                    let d_up = z.clone().greater_elem(0.0).float() * inverse(z_up, *stabilizer);
                    let d_down = z.lower_elem(0.0).float() * inverse(z_down, *stabilizer);
                    vec![group(Factor::All(x), vec![(w_up, d_up), (w_down, d_down)])]
                } else {
                    let b_up = b.as_ref().map(|b| b.clone() + b.clone().clamp_min(0.0) * *gamma);
                    let b_down = b.as_ref().map(|b| b.clone() + b.clone().clamp_max(0.0) * *gamma);
                    // One of z↑, z↓, x⁺, x⁻ at a time: a large layer holds z and one divisor more.
                    let z = output(&x, &w, b);
                    let z_up =
                        layer.forward(pos5(&x), w_up.clone(), b_up) + layer.forward(neg5(&x), w_down.clone(), None);
                    let d_up = z.clone().greater_elem(0.0).float() * inverse(z_up, *stabilizer);
                    let z_down =
                        layer.forward(pos5(&x), w_down.clone(), b_down) + layer.forward(neg5(&x), w_up.clone(), None);
                    let d_down = z.lower_elem(0.0).float() * inverse(z_down, *stabilizer);
                    vec![
                        group(
                            Factor::Pos(x.clone()),
                            vec![(w_up.clone(), d_up.clone()), (w_down.clone(), d_down.clone())],
                        ),
                        group(Factor::Neg(x.clone()), vec![(w_down, d_up), (w_up, d_down)]),
                    ]
                }
            }
            Rule::ZBox { low, high, stabilizer } => {
                // The bounds are constant per input channel, so their two terms are one map with
                // weights w_b = l·w⁺ + h·w⁻ (scaled per input channel) on an input of ones, and
                // the biases cancel: z = (x w + b) − (1 w_b + b), R_in = x (wᵀ s) − w_bᵀ s.
                let w_b = pos5(&w) * channel_factors(low, &w, layer) + neg5(&w) * channel_factors(high, &w, layer);
                let z = output(&x, &w, b.clone()) - layer.forward(x.ones_like(), w_b.clone(), b);
                let d = inverse(z, *stabilizer);
                vec![group(Factor::All(x), vec![(w, d.clone())]), group(Factor::One, vec![(-w_b, d)])]
            }
            Rule::Flat { stabilizer } => {
                let w1 = w.ones_like();
                let d = inverse(layer.forward(x.ones_like(), w1.clone(), None), *stabilizer);
                vec![group(Factor::One, vec![(w1, d)])]
            }
            Rule::WSquare { stabilizer } => {
                let w2 = w.clone() * w;
                let b2 = b.map(|b| b.clone() * b);
                let d = inverse(layer.forward(x.ones_like(), w2.clone(), b2), *stabilizer);
                vec![group(Factor::One, vec![(w2, d)])]
            }
        };
        PreparedRule { layer: layer.clone(), in_dims, groups }
    }

    /// `R_in = L R`: the relevance of the layer's input from that of its output. `r` may hold a
    /// batch of relevances for the one input (the per-voxel oracle).
    pub fn apply(&self, r: Tensor<5>) -> Tensor<5> {
        let axis = self.layer.out_axis();
        let mut in_dims = self.in_dims;
        in_dims[0] = r.dims()[0];
        self.groups
            .iter()
            .map(|g| {
                let back = match &g.terms[..] {
                    [(w, d)] => self.layer.backward(scaled(r.clone(), d), w.clone(), in_dims),
                    // Large layers one term at a time: the joined product would copy r per term.
                    terms if r.shape().num_elements() * terms.len() * 4 > JOINED_BYTES => terms
                        .iter()
                        .map(|(w, d)| self.layer.backward(scaled(r.clone(), d), w.clone(), in_dims))
                        .reduce(|a, b| a + b)
                        .expect("terms"),
                    terms => {
                        let s = Tensor::cat(terms.iter().map(|(_, d)| scaled(r.clone(), d)).collect(), 1);
                        let w = Tensor::cat(terms.iter().map(|(w, _)| w.clone()).collect(), axis);
                        self.layer.backward(s, w, in_dims)
                    }
                };
                g.input.times(back)
            })
            .reduce(|a, b| a + b)
            .expect("a rule has a term")
    }

    /// `Lᵀ v`: `v` shaped like the layer's input, the result like its output.
    pub fn transpose(&self, v: Tensor<5>) -> Tensor<5> {
        self.groups
            .iter()
            .flat_map(|g| {
                let v = g.input.times(v.clone());
                let outs = forward_many(&self.layer, v, g.terms.iter().map(|(w, _)| (w.clone(), None)).collect());
                outs.into_iter().zip(&g.terms).map(|(o, (_, d))| scaled(o, d)).collect::<Vec<_>>()
            })
            .reduce(|a, b| a + b)
            .expect("a rule has a term")
    }
}

/// Several forward convolutions of one input as one (the parameters concatenated along the
/// output channels). Returns the outputs in order.
fn forward_many(layer: &Linear, x: Tensor<5>, params: Vec<(Tensor<5>, Option<Tensor<1>>)>) -> Vec<Tensor<5>> {
    if params.len() == 1 {
        let (w, b) = params.into_iter().next().expect("one");
        return vec![layer.forward(x, w, b)];
    }
    let axis = layer.out_axis();
    let sizes: Vec<usize> = params.iter().map(|(w, _)| w.dims()[axis]).collect();
    let bias = if params.iter().any(|(_, b)| b.is_some()) {
        let parts = params
            .iter()
            .zip(&sizes)
            .map(|((w, b), &n)| b.clone().unwrap_or_else(|| Tensor::zeros([n], &w.device())))
            .collect();
        Some(Tensor::cat(parts, 0))
    } else {
        None
    };
    let w = Tensor::cat(params.into_iter().map(|(w, _)| w).collect(), axis);
    split_channels(layer.forward(x, w, bias), &sizes)
}

/// Relevance of the layer's input `x` given the relevance `r` of its output; `input` says
/// whether `x` may be negative (see [`Input`]).
pub fn relevance(rule: &Rule, layer: &Linear, x: Tensor<5>, input: Input, r: Tensor<5>) -> Tensor<5> {
    PreparedRule::new(rule, layer, x, input).apply(r)
}

/// Relevance through a channel concatenation: each input keeps the relevance of its channels.
pub fn split_channels(r: Tensor<5>, sizes: &[usize]) -> Vec<Tensor<5>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let part = r.clone().narrow(1, start, n);
            start += n;
            part
        })
        .collect()
}
