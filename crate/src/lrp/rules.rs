//! LRP rules for the layers of a 3D U-Net, with Zennit's formulas.
//!
//! Every rule works as Zennit's do: modify the forward output `z`, divide the incoming
//! relevance by it, push the quotient back with the layer's transposed linear map (its
//! gradient with respect to the input) and multiply by the input:
//! `R_in = x ⊙ Wᵀ (R_out / stabilise(z))`.

use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::module::{conv3d, conv_transpose3d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// Zennit's stabiliser: `z + ε·sgn₀(z)` with `sgn₀(0) = +1`, so the divisor never is 0.
pub fn stabilise(z: Tensor<5>, eps: f32) -> Tensor<5> {
    let sign0 = z.clone().greater_equal_elem(0.0).float() * 2.0 - 1.0;
    z + sign0 * eps
}

/// Symmetric padding of a Conv3d (the skeleton's convs use explicit or valid padding).
pub fn conv_padding(conv: &Conv3d) -> [usize; 3] {
    match conv.padding {
        PaddingConfig3d::Explicit(d, h, w) => [d, h, w],
        PaddingConfig3d::Valid => [0; 3],
        // "Same" with stride 1 and odd kernels is k/2 on each side.
        PaddingConfig3d::Same => conv.kernel_size.map(|k| k / 2),
    }
}

pub fn conv_forward(conv: &Conv3d, x: Tensor<5>, with_bias: bool) -> Tensor<5> {
    conv3d(
        x,
        conv.weight.val(),
        if with_bias { conv.bias.as_ref().map(|b| b.val()) } else { None },
        ConvOptions::new(conv.stride, conv_padding(conv), conv.dilation, conv.groups),
    )
}

/// `Wᵀ s` for a Conv3d: the transposed convolution that maps the output grid back onto an
/// input of `in_dims`; `padding_out` restores the rows a strided conv dropped.
fn conv_transposed_map(conv: &Conv3d, s: Tensor<5>, in_dims: [usize; 5]) -> Tensor<5> {
    let pad = conv_padding(conv);
    let out_dims = s.dims();
    let padding_out: [usize; 3] = std::array::from_fn(|i| {
        let produced = (out_dims[i + 2] - 1) * conv.stride[i] + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1;
        (in_dims[i + 2] + 2 * pad[i]).saturating_sub(produced)
    });
    conv_transpose3d(
        s,
        conv.weight.val(),
        None,
        ConvTransposeOptions::new(conv.stride, pad, padding_out, conv.dilation, conv.groups),
    )
}

/// LRP-ε (Zennit `Epsilon`) through a 3D convolution, bias kept in `z`:
///
/// `z_j = Σ_i x_i w_ij + b_j`,
/// `R_i = x_i · Σ_j w_ij · R_j / (z_j + ε·sgn₀(z_j))`, with `sgn₀(0) = +1`.
///
/// With zero bias and ε → 0 it conserves relevance: `Σ_i R_i = Σ_j R_j`.
pub fn epsilon_conv3d(conv: &Conv3d, x: Tensor<5>, r_out: Tensor<5>, eps: f32) -> Tensor<5> {
    let z = conv_forward(conv, x.clone(), true);
    let s = r_out / stabilise(z, eps);
    let in_dims = x.dims();
    x * conv_transposed_map(conv, s, in_dims)
}

/// LRP-ε (Zennit `Epsilon`) through a 3D transposed convolution; same formula as
/// [`epsilon_conv3d`], where `Wᵀ` of a transposed convolution is the plain convolution:
///
/// `z_j = Σ_i x_i w_ij + b_j`,  `R_i = x_i · Σ_j w_ij · R_j / (z_j + ε·sgn₀(z_j))`.
pub fn epsilon_conv_transpose3d(up: &ConvTranspose3d, x: Tensor<5>, r_out: Tensor<5>, eps: f32) -> Tensor<5> {
    let options = ConvTransposeOptions::new(up.stride, up.padding, up.padding_out, up.dilation, up.groups);
    let z = conv_transpose3d(x.clone(), up.weight.val(), up.bias.as_ref().map(|b| b.val()), options);
    let s = r_out / stabilise(z, eps);
    let back = conv3d(s, up.weight.val(), None, ConvOptions::new(up.stride, up.padding, up.dilation, up.groups));
    x * back
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
