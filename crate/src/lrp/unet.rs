//! LRP through a U-Net, layer by layer in reverse order, with the rules a [`Composite`] assigns.
//!
//! ReLU passes relevance unchanged (Zennit's `Pass`), norms are merged into their conv
//! (`canonize.rs`), max-pooling routes relevance to each window's winner (Zennit propagates the
//! gradient there), a concat skip splits it by channel, and each branch point (an encoder
//! level's output, read by the skip and by the path down) sums what comes back along both.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::canonize::merged_conv;
use super::composite::Composite;
use super::rules::{relevance, split_channels, Linear};
use crate::pool::max_unpool3d;
use crate::unet::{Activations, Block, BlockTrace, Down, UNet};

/// The input relevance for one output voxel and class.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// `[1, C, D, H, W]`, same grid as the network input.
    pub relevance: Tensor<5>,
    /// The explained logit `y_c(a)`: the relevance the pass starts from.
    pub logit: Tensor<1>,
}

/// One-hot start relevance: the logit of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_relevance(logits: &Tensor<5>, class: usize, voxel: [usize; 3]) -> Tensor<5> {
    let dims = logits.dims();
    let [_, _, d, h, w] = dims;
    let mut mask = vec![0f32; dims.iter().product()];
    mask[((class * d + voxel[0]) * h + voxel[1]) * w + voxel[2]] = 1.0;
    logits.clone() * Tensor::from_data(TensorData::new(mask, dims), &logits.device())
}

fn through_blocks(blocks: &[Block], traces: &[BlockTrace], prefix: &str, composite: &Composite, mut r: Tensor<5>) -> Tensor<5> {
    for (b, (block, trace)) in blocks.iter().zip(traces).enumerate().rev() {
        let rule = composite.rule(&format!("{prefix}.{b}.conv"));
        r = relevance(&rule, &merged_conv(block, trace), trace.input.clone(), r);
    }
    r
}

/// Relevance of the network input for a given relevance `r` of the logits (zero except where
/// the explanation starts). Linear in `r` for a fixed forward pass.
pub fn propagate(net: &UNet, act: &Activations, composite: &Composite, r: Tensor<5>) -> Tensor<5> {
    let cfg = &net.config;
    let mut r = relevance(&composite.rule("head"), &Linear::conv(&net.head), act.head_input.clone(), r);
    let mut skips: Vec<Option<Tensor<5>>> = vec![None; cfg.levels];
    for i in (0..net.decoder.len()).rev() {
        let level = cfg.levels - 2 - i;
        r = through_blocks(&net.decoder[i], &act.decoder[i], &format!("decoder.{i}"), composite, r);
        let c = cfg.channels(level);
        let [r_skip, r_up]: [Tensor<5>; 2] = split_channels(r, &[c, c]).try_into().expect("two parts");
        skips[level] = Some(r_skip);
        r = relevance(&composite.rule(&format!("ups.{i}")), &Linear::conv_transpose(&net.ups[i]), act.up_inputs[i].clone(), r_up);
    }
    for level in (0..cfg.levels).rev() {
        if let Some(skip) = skips[level].take() {
            r = r + skip;
        }
        r = through_blocks(&net.encoder[level], &act.encoder[level], &format!("encoder.{level}"), composite, r);
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
    let r = start_relevance(&act.logits, class, voxel);
    let logit = r.clone().sum();
    Explanation { relevance: propagate(net, act, composite, r), logit }
}
