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
use super::rules::{relevance, split_channels, Input, Linear};
use crate::unet::Activation;
use crate::pool::max_unpool3d;
use crate::upsample::upsample2_adjoint;
use crate::unet::{Activations, Block, BlockTrace, Down, UNet};

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

/// `first` is what the first block reads; every later block reads its predecessor's activation.
fn through_blocks(blocks: &[Block], traces: &[BlockTrace], prefix: &str, composite: &Composite, first: Input, after: Input, mut r: Tensor<5>) -> Tensor<5> {
    for (b, (block, trace)) in blocks.iter().zip(traces).enumerate().rev() {
        let rule = composite.rule(&format!("{prefix}.{b}.conv"));
        r = relevance(&rule, &merged_conv(block, trace), trace.input.clone(), if b == 0 { first } else { after }, r);
    }
    r
}

/// Relevance of the network input for a given relevance `r` of the logits (zero except where
/// the explanation starts). Linear in `r` for a fixed forward pass.
pub fn propagate(net: &UNet, act: &Activations, composite: &Composite, r: Tensor<5>) -> Tensor<5> {
    let cfg = &net.config;
    // What each layer reads: a ReLU's output (max-pooled or up-sampled, still ≥ 0), except the
    // MRI itself and a decoder's concatenation, half of which is a linear up-sampling's output.
    let activated = if cfg.activation == Activation::Relu { Input::NonNegative } else { Input::Signed };
    let mut r = relevance(&composite.rule("head"), &Linear::conv(&net.head), act.head_input.clone(), activated, r);
    let mut skips: Vec<Option<Tensor<5>>> = vec![None; cfg.levels];
    for i in (0..net.decoder.len()).rev() {
        let level = cfg.levels - 2 - i;
        r = through_blocks(&net.decoder[i], &act.decoder[i], &format!("decoder.{i}"), composite, Input::Signed, activated, r);
        let c = cfg.channels(level);
        let [r_skip, r_up]: [Tensor<5>; 2] = split_channels(r, &[c, c]).try_into().expect("two parts");
        skips[level] = Some(r_skip);
        let rule = composite.rule(&format!("ups.{i}"));
        let up = &net.ups[i];
        r = match (&up.transposed, &up.conv, &act.up_sampled[i]) {
            (Some(t), _, _) => relevance(&rule, &Linear::conv_transpose(t), act.up_inputs[i].clone(), activated, r_up),
            (None, Some(conv), Some(sampled)) => {
                let r_sampled = relevance(&rule, &Linear::conv(conv), sampled.clone(), activated, r_up);
                upsample2_adjoint(r_sampled, up.upsample_mode())
            }
            _ => unreachable!("forward and network agree"),
        };
    }
    for level in (0..cfg.levels).rev() {
        if let Some(skip) = skips[level].take() {
            r = r + skip;
        }
        let first = if level == 0 { Input::Signed } else { activated };
        r = through_blocks(&net.encoder[level], &act.encoder[level], &format!("encoder.{level}"), composite, first, activated, r);
        if level > 0 && cfg.down == Down::MaxPool {
            let below = act.encoder[level - 1].last().expect("≥ 1 block").output.clone();
            r = max_unpool3d(below, r);
        }
    }
    r
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
