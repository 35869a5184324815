//! LRP through the skeleton U-Net, layer by layer in reverse order.
//!
//! ReLU passes relevance unchanged (Zennit's `Pass`), max-pooling routes it to each window's
//! winner, the concat skip splits it by channel, and the branch point e1 (read by the skip and
//! by the pooling path) sums what comes back along both.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::rules::{epsilon_conv3d, epsilon_conv_transpose3d, split_channels};
use crate::pool::max_unpool3d;
use crate::unet::{Activations, UNet};

/// The input relevance for one output voxel and class.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// `[1, 6, D, H, W]`, same grid as the network input.
    pub relevance: Tensor<5>,
    /// The explained logit `y_c(a)`: the relevance the pass starts from.
    pub logit: Tensor<1>,
}

/// One-hot start relevance: the logit of `class` at voxel `(d, h, w)`, zero elsewhere.
fn start_relevance(logits: &Tensor<5>, class: usize, voxel: [usize; 3]) -> Tensor<5> {
    let dims = logits.dims();
    let [_, _, d, h, w] = dims;
    let mut mask = vec![0f32; dims.iter().product()];
    mask[((class * d + voxel[0]) * h + voxel[1]) * w + voxel[2]] = 1.0;
    logits.clone() * Tensor::from_data(TensorData::new(mask, dims), &logits.device())
}

/// LRP-ε for the logit of `class` at `voxel = [d, h, w]` (tensor axes; for NIfTI files that
/// is `[z, y, x]`).
pub fn explain_voxel(net: &UNet, act: &Activations, class: usize, voxel: [usize; 3], eps: f32) -> Explanation {
    let r = start_relevance(&act.logits, class, voxel);
    let logit = r.clone().sum();
    let r_d = epsilon_conv3d(&net.head, act.d.clone(), r, eps);
    let r_cat = epsilon_conv3d(&net.dec, act.cat.clone(), r_d, eps);
    let [r_skip, r_u]: [Tensor<5>; 2] = split_channels(r_cat, &[act.e1.dims()[1], act.u.dims()[1]])
        .try_into()
        .expect("two parts");
    let r_b = epsilon_conv_transpose3d(&net.up, act.b.clone(), r_u, eps);
    let r_p = epsilon_conv3d(&net.enc2, act.p.clone(), r_b, eps);
    let r_e1 = r_skip + max_unpool3d(act.e1.clone(), r_p);
    let relevance = epsilon_conv3d(&net.enc1, act.x.clone(), r_e1, eps);
    Explanation { relevance, logit }
}
