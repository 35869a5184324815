//! LRP through a U-Net, layer by layer in reverse order, with the rules a [`Composite`] assigns.
//!
//! ReLU and leaky ReLU pass relevance unchanged (Zennit's `Pass`), up-sampling sends it back
//! through its adjoint (the gradient; Zennit has no rule there), norms are merged into their conv
//! (`canonize.rs`), max-pooling routes relevance to each window's winner (Zennit propagates the
//! gradient there), a concat skip splits it by channel, and each branch point (an encoder
//! level's output, read by the skip and by the path down) sums what comes back along both.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::canonize::merged_conv;
use super::composite::Composite;
use super::rules::{split_channels, Input, Linear, PreparedRule};
use crate::pool::{max_gather3d, max_unpool3d};
use crate::unet::{Activation, Activations, Block, BlockTrace, Down, UNet};
use crate::upsample::{upsample2, upsample2_adjoint};

/// The input relevance for one output voxel and class.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// `[1, C, D, H, W]`, same grid as the network input.
    pub relevance: Tensor<5>,
    /// The explained logit `y_c(a)`: the relevance the pass starts from.
    pub logit: Tensor<1>,
}

/// What an explanation starts from at its output voxel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// The logit `y_c` of the class explained.
    #[default]
    Logit,
    /// The logit difference `y_c − y_o`: relevance starts as `y_c` on class `c` and `−y_o` on
    /// class `o` (LRP-0 through the difference), i.e. `logits ⊙ (e_c − e_o)`, as Zennit does with
    /// `attr_output = output * (onehot_c − onehot_o)`.
    Difference { other: usize },
}

/// Start relevance for `target` of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_for(logits: &Tensor<5>, class: usize, voxel: [usize; 3], target: Target) -> Tensor<5> {
    let dims = logits.dims();
    let [_, _, d, h, w] = dims;
    let at = |c: usize| ((c * d + voxel[0]) * h + voxel[1]) * w + voxel[2];
    let mut mask = vec![0f32; dims.iter().product()];
    mask[at(class)] = 1.0;
    if let Target::Difference { other } = target {
        mask[at(other)] = -1.0;
    }
    logits.clone() * Tensor::from_data(TensorData::new(mask, dims), &logits.device())
}

/// One-hot start relevance: the logit of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_relevance(logits: &Tensor<5>, class: usize, voxel: [usize; 3]) -> Tensor<5> {
    start_for(logits, class, voxel, Target::Logit)
}

/// One linear layer of the U-Net as LRP meets it: its name (for the composite), its map, what
/// it read in the forward pass and what is known of that input.
struct Site {
    name: String,
    layer: Linear,
    x: Tensor<5>,
    input: Input,
    /// The layer's output `x ⋆ w + b` where the forward pass kept exactly that (a conv without
    /// a norm merged into it, the head's logits).
    z: Option<Tensor<5>>,
}

impl Site {
    fn prepare(&self, composite: &Composite) -> PreparedRule {
        PreparedRule::with_output(&composite.rule(&self.name), &self.layer, self.x.clone(), self.input, self.z.clone())
    }
}

/// Every linear layer in the order [`propagate`] meets them (output to input).
fn sites(net: &UNet, act: &Activations) -> Vec<Site> {
    let cfg = &net.config;
    // What each layer reads: a ReLU's output (max-pooled or up-sampled, still ≥ 0), except the
    // MRI itself and a decoder's concatenation, half of which is a linear up-sampling's output.
    let activated = if cfg.activation == Activation::Relu { Input::NonNegative } else { Input::Signed };
    let site = |name: String, layer: Linear, x: &Tensor<5>, input: Input| Site { name, layer, x: x.clone(), input, z: None };
    let blocks = |out: &mut Vec<Site>, blocks: &[Block], traces: &[BlockTrace], prefix: &str, first: Input| {
        for (b, (block, trace)) in blocks.iter().zip(traces).enumerate().rev() {
            let input = if b == 0 { first } else { activated };
            let z = block.norm.is_none().then(|| trace.conv_out.clone());
            out.push(Site { z, ..site(format!("{prefix}.{b}.conv"), merged_conv(block, trace), &trace.input, input) });
        }
    };
    let mut out = vec![Site { z: Some(act.logits.clone()), ..site("head".into(), Linear::conv(&net.head), &act.head_input, activated) }];
    for i in (0..net.decoder.len()).rev() {
        blocks(&mut out, &net.decoder[i], &act.decoder[i], &format!("decoder.{i}"), Input::Signed);
        let up = &net.ups[i];
        out.push(match (&up.transposed, &up.conv, &act.up_sampled[i]) {
            (Some(t), _, _) => site(format!("ups.{i}"), Linear::conv_transpose(t), &act.up_inputs[i], activated),
            (None, Some(conv), Some(sampled)) => site(format!("ups.{i}"), Linear::conv(conv), sampled, activated),
            _ => unreachable!("forward and network agree"),
        });
    }
    for level in (0..cfg.levels).rev() {
        let first = if level == 0 { Input::Signed } else { activated };
        blocks(&mut out, &net.encoder[level], &act.encoder[level], &format!("encoder.{level}"), first);
    }
    out
}

/// The rules of a composite applied to every layer of one forward pass ([`PreparedRule`]s, in
/// [`propagate`]'s order): what several passes through one forward pass share. Holds a few
/// tensors the size of each layer's output.
pub struct Plan {
    rules: Vec<PreparedRule>,
}

impl Plan {
    pub fn new(net: &UNet, act: &Activations, composite: &Composite) -> Plan {
        Plan { rules: sites(net, act).iter().map(|s| s.prepare(composite)).collect() }
    }
}

/// The walk of [`propagate`] with the `k`-th layer's map given by `rule(k)`.
fn walk_back(net: &UNet, act: &Activations, mut rule: impl FnMut(usize) -> PreparedRule, r: Tensor<5>) -> Tensor<5> {
    let cfg = &net.config;
    let mut k = 0;
    let mut next = |r: Tensor<5>| {
        let out = rule(k).apply(r);
        k += 1;
        out
    };
    let mut r = next(r);
    let mut skips: Vec<Option<Tensor<5>>> = vec![None; cfg.levels];
    for i in (0..net.decoder.len()).rev() {
        let level = cfg.levels - 2 - i;
        for _ in &net.decoder[i] {
            r = next(r);
        }
        let c = cfg.channels(level);
        let [r_skip, r_up]: [Tensor<5>; 2] = split_channels(r, &[c, c]).try_into().expect("two parts");
        skips[level] = Some(r_skip);
        let up = &net.ups[i];
        r = next(r_up);
        if up.transposed.is_none() {
            r = upsample2_adjoint(r, up.upsample_mode());
        }
    }
    for level in (0..cfg.levels).rev() {
        if let Some(skip) = skips[level].take() {
            r = r + skip;
        }
        for _ in &net.encoder[level] {
            r = next(r);
        }
        if level > 0 && cfg.down == Down::MaxPool {
            let below = act.encoder[level - 1].last().expect("≥ 1 block").output.clone();
            r = max_unpool3d(below, r);
        }
    }
    r
}

/// Relevance of the network input for a given relevance `r` of the logits (zero except where
/// the explanation starts). Linear in `r` for a fixed forward pass. Each layer's rule is made
/// when the walk reaches it and dropped after, so one pass holds one layer's at a time.
pub fn propagate(net: &UNet, act: &Activations, composite: &Composite, r: Tensor<5>) -> Tensor<5> {
    let sites = sites(net, act);
    walk_back(net, act, |k| sites[k].prepare(composite), r)
}

/// [`propagate`] with the layers' rules made beforehand.
pub fn propagate_planned(net: &UNet, act: &Activations, plan: &Plan, r: Tensor<5>) -> Tensor<5> {
    walk_back(net, act, |k| plan.rules[k].clone(), r)
}

/// `Lᵀ v` for the map `L` of [`propagate`]: `v` shaped like the network input, the result like
/// the logits. The walk of `propagate` backwards, each step replaced by its transpose: a layer's
/// rule by [`PreparedRule::transpose`], routing to a pooling window's winner by reading the
/// winner, up-sampling's adjoint by up-sampling, a channel split by a concatenation, and the
/// sum at a skip by sending `v` both ways.
pub fn transpose_planned(net: &UNet, act: &Activations, plan: &Plan, v: Tensor<5>) -> Tensor<5> {
    let cfg = &net.config;
    let mut k = plan.rules.len();
    let mut next = |v: Tensor<5>| {
        k -= 1;
        plan.rules[k].transpose(v)
    };
    let mut v = v;
    let mut skips: Vec<Option<Tensor<5>>> = vec![None; cfg.levels];
    for level in 0..cfg.levels {
        if level > 0 && cfg.down == Down::MaxPool {
            let below = act.encoder[level - 1].last().expect("≥ 1 block").output.clone();
            v = max_gather3d(below, v);
        }
        for _ in &net.encoder[level] {
            v = next(v);
        }
        if level + 1 < cfg.levels {
            skips[level] = Some(v.clone());
        }
    }
    for i in 0..net.decoder.len() {
        let level = cfg.levels - 2 - i;
        let up = &net.ups[i];
        if up.transposed.is_none() {
            v = upsample2(v, up.upsample_mode());
        }
        v = next(v);
        v = Tensor::cat(vec![skips[level].take().expect("a skip per decoder level"), v], 1);
        for _ in &net.decoder[i] {
            v = next(v);
        }
    }
    next(v)
}

/// The relevance map for the logit of `class` at `voxel = [d, h, w]` (tensor axes; for NIfTI
/// files that is `[z, y, x]`).
pub fn explain_voxel(net: &UNet, act: &Activations, composite: &Composite, class: usize, voxel: [usize; 3]) -> Explanation {
    explain_target(net, act, composite, class, voxel, Target::Logit)
}

/// As [`explain_voxel`], for any [`Target`]; `logit` is then the explained quantity.
pub fn explain_target(net: &UNet, act: &Activations, composite: &Composite, class: usize, voxel: [usize; 3], target: Target) -> Explanation {
    let r = start_for(&act.logits, class, voxel, target);
    let logit = r.clone().sum();
    Explanation { relevance: propagate(net, act, composite, r), logit }
}
