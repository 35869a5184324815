//! Canonization: a conv followed by batch or instance norm becomes one conv before relevance
//! is propagated, as Zennit's `SequentialMergeBatchNorm`. With the norm as `z·s + t`
//! (`s = γ/√(var + eps)`, `t = β − mean·s`; instance norm uses the current input's per-channel
//! statistics, frozen), the merged conv has `w' = w·s` per output channel and `b' = b·s + t`.

use super::rules::Linear;
use crate::model::unet::{Block, BlockTrace};

/// The block's conv with its norm merged in (the conv itself when it has no norm).
pub fn merged_conv(block: &Block, trace: &BlockTrace) -> Linear {
    let conv = Linear::conv(&block.conv);
    let Some(norm) = &block.norm else { return conv };
    let (scale, shift) = match &trace.frozen_norm {
        Some(frozen) => frozen.clone(),
        None => norm.affine(&trace.conv_out),
    };
    let c = scale.dims()[0];
    let weight = conv.weight.clone() * scale.clone().reshape([c, 1, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(b) => b.clone() * scale + shift,
        None => shift,
    };
    conv.with(weight, Some(bias))
}
