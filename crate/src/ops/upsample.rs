//! ×2 up-sampling of 5-D volumes, nearest and trilinear (PyTorch's `nn.Upsample(scale_factor=2)`
//! with `align_corners=False`), and their adjoints, through which LRP sends relevance (Zennit
//! has no rule for up-sampling, so the gradient carries it; both modes conserve it).
//!
//! burn 0.22 interpolates only 2-D images, so each axis is done in turn with slices and a
//! reshape that interleaves two planes, keeping every tensor at rank ≤ 6.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Nearest,
    Trilinear,
}

/// `[.., n, ..]` → `[.., 2n, ..]` along `axis` (2, 3 or 4), output `2i` from `even[i]` and
/// `2i + 1` from `odd[i]`.
fn interleave(even: Tensor<5>, odd: Tensor<5>, axis: usize) -> Tensor<5> {
    let mut dims = even.dims();
    let stacked: Tensor<6> = Tensor::stack(vec![even, odd], axis + 1);
    dims[axis] *= 2;
    stacked.reshape(dims)
}

/// The inverse of [`interleave`]: the even and the odd planes along `axis`.
fn deinterleave(x: Tensor<5>, axis: usize) -> (Tensor<5>, Tensor<5>) {
    let dims = x.dims();
    let mut split = [0usize; 6];
    split[..=axis].copy_from_slice(&dims[..=axis]);
    split[axis] /= 2;
    split[axis + 1] = 2;
    split[axis + 2..].copy_from_slice(&dims[axis + 1..]);
    let pairs: Tensor<6> = x.reshape(split);
    let mut half = dims;
    half[axis] /= 2;
    let even = pairs.clone().narrow(axis + 1, 0, 1).reshape(half);
    let odd = pairs.narrow(axis + 1, 1, 1).reshape(half);
    (even, odd)
}

/// `x` shifted by one plane along `axis`, the border plane repeated: `x[i − 1]` (`back`) or
/// `x[i + 1]`, clamped as PyTorch clamps source coordinates.
fn shifted(x: &Tensor<5>, axis: usize, back: bool) -> Tensor<5> {
    let n = x.dims()[axis];
    if n == 1 {
        return x.clone();
    }
    if back {
        Tensor::cat(vec![x.clone().narrow(axis, 0, 1), x.clone().narrow(axis, 0, n - 1)], axis)
    } else {
        Tensor::cat(vec![x.clone().narrow(axis, 1, n - 1), x.clone().narrow(axis, n - 1, 1)], axis)
    }
}

fn up_axis(x: Tensor<5>, axis: usize, mode: Mode) -> Tensor<5> {
    match mode {
        Mode::Nearest => interleave(x.clone(), x, axis),
        // Output 2i samples at i − ¼, output 2i + 1 at i + ¼.
        Mode::Trilinear => {
            let even = x.clone() * 0.75 + shifted(&x, axis, true) * 0.25;
            let odd = x.clone() * 0.75 + shifted(&x, axis, false) * 0.25;
            interleave(even, odd, axis)
        }
    }
}

/// The adjoint of [`up_axis`]: what each input plane receives from the outputs it fed.
fn up_axis_adjoint(g: Tensor<5>, axis: usize, mode: Mode) -> Tensor<5> {
    let (even, odd) = deinterleave(g, axis);
    match mode {
        Mode::Nearest => even + odd,
        Mode::Trilinear => {
            let n = even.dims()[axis];
            // x[i] ← ¾ even[i] + ¾ odd[i] + ¼ even[i + 1] + ¼ odd[i − 1]; at the borders the
            // clamped neighbour is x itself.
            let mut out = (even.clone() + odd.clone()) * 0.75;
            if n == 1 {
                return out + (even + odd) * 0.25;
            }
            let zeros = |t: &Tensor<5>| t.clone().narrow(axis, 0, 1).zeros_like();
            let next_even = Tensor::cat(vec![even.clone().narrow(axis, 1, n - 1), zeros(&even)], axis);
            let prev_odd = Tensor::cat(vec![zeros(&odd), odd.clone().narrow(axis, 0, n - 1)], axis);
            out = out + (next_even + prev_odd) * 0.25;
            // even[0] also sampled x[0] as its clamped left neighbour; odd[n−1] x[n−1] on the right.
            let first = even.narrow(axis, 0, 1) * 0.25;
            let last = odd.narrow(axis, n - 1, 1) * 0.25;
            let pad = |t: Tensor<5>, at_start: bool| {
                let rest = out.clone().narrow(axis, 0, n - 1).zeros_like();
                if at_start {
                    Tensor::cat(vec![t, rest], axis)
                } else {
                    Tensor::cat(vec![rest, t], axis)
                }
            };
            out.clone() + pad(first, true) + pad(last, false)
        }
    }
}

/// ×2 along depth, height and width.
pub fn upsample2(x: Tensor<5>, mode: Mode) -> Tensor<5> {
    (2..5).fold(x, |t, axis| up_axis(t, axis, mode))
}

/// Relevance (or gradient) of the input of [`upsample2`] from that of its output.
pub fn upsample2_adjoint(g: Tensor<5>, mode: Mode) -> Tensor<5> {
    (2..5).rev().fold(g, |t, axis| up_axis_adjoint(t, axis, mode))
}
