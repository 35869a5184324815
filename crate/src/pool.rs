//! 2×2×2 max-pooling for 5-D volumes `[batch, channel, depth, height, width]`.
//!
//! burn 0.22 ships max-pooling only up to 2-D. A 2×2×2 window with stride 2 is a reshape:
//! split every spatial axis into (half, 2), move the three window axes to the end and take the
//! max over them. The same layout gives the window's winner, which the LRP backward pass needs.
//! The reshape stays at rank 6, the most the ndarray backend supports.

use burn::prelude::*;

/// Spatial dims must be even: the U-Net pads its input to a multiple of 2 before pooling.
fn windows(x: Tensor<5>) -> (Tensor<4>, [usize; 5]) {
    let [n, c, d, h, w] = x.dims();
    assert!(d % 2 == 0 && h % 2 == 0 && w % 2 == 0, "max_pool3d needs even dims, got {d}×{h}×{w}");
    let (d2, h2, w2) = (d / 2, h / 2, w / 2);
    let win = x.reshape([n * c * d2, 2, h2, 2, w2, 2]).permute([0, 2, 4, 1, 3, 5]).reshape([n * c * d2, h2, w2, 8]);
    (win, [n, c, d2, h2, w2])
}

/// Max over each 2×2×2 block (stride 2), as `torch.nn.MaxPool3d(2)`.
pub fn max_pool3d(x: Tensor<5>) -> Tensor<5> {
    let (win, shape) = windows(x);
    win.max_dim(3).reshape(shape)
}

/// 1 at each 2×2×2 window's winner (its max; the first on ties), `[n·c·d/2, h/2, w/2, 8]`.
fn winners(x: Tensor<5>) -> (Tensor<4>, [usize; 5]) {
    let (win, pooled) = windows(x);
    // One-hot of the argmax by comparison with 0..8 (burn's `one_hot` validates its input with a
    // synchronous read, which WebGPU in a browser cannot do).
    let shape = win.dims();
    let slots = Tensor::<1, Int>::arange(0..8, &win.device()).reshape([1, 1, 1, 8]).expand(shape);
    (win.argmax(3).expand(shape).equal(slots).float(), pooled)
}

/// The transpose of [`max_unpool3d`] for one `x`: each window's winner's value of `v` (shaped
/// like `x`), on the pooled grid.
pub fn max_gather3d(x: Tensor<5>, v: Tensor<5>) -> Tensor<5> {
    let (winner, pooled) = winners(x);
    let (values, _) = windows(v);
    (winner * values).sum_dim(3).reshape(pooled)
}

/// Routes `r` (shaped like the pooled output) back to the winner of each window of `x`:
/// the gradient of [`max_pool3d`], which is what Zennit propagates through max-pooling.
/// On ties the first voxel of the window (depth-major order) wins, as in PyTorch.
///
/// `r` may hold a batch of `B` relevances for one `x` (batch 1): each is routed to the same
/// winners (the per-voxel region oracle explains many voxels at once).
pub fn max_unpool3d(x: Tensor<5>, r: Tensor<5>) -> Tensor<5> {
    let [n, c, d, h, w] = x.dims();
    let batch = r.dims()[0];
    let (mut winner, [_, _, d2, h2, w2]) = winners(x);
    if batch != n {
        assert_eq!(n, 1, "a batch of relevances needs a single input");
        winner = winner.repeat_dim(0, batch);
    }
    let routed = winner * r.reshape([batch * c * d2, h2, w2, 1]);
    routed.reshape([batch * c * d2, h2, w2, 2, 2, 2]).permute([0, 3, 1, 4, 2, 5]).reshape([batch, c, d, h, w])
}

/// Mean over each 2×2×2 block (stride 2), as `torch.nn.AvgPool3d(2)`.
pub fn avg_pool3d(x: Tensor<5>) -> Tensor<5> {
    let (win, shape) = windows(x);
    win.mean_dim(3).reshape(shape)
}

/// The adjoint of [`avg_pool3d`]: each pooled value spread over its window, divided by 8.
pub fn avg_pool3d_adjoint(g: Tensor<5>) -> Tensor<5> {
    let [n, c, d2, h2, w2] = g.dims();
    let spread = g.reshape([n * c * d2, h2, w2, 1]).expand([n * c * d2, h2, w2, 8]) / 8.0;
    spread.reshape([n * c * d2, h2, w2, 2, 2, 2]).permute([0, 3, 1, 4, 2, 5]).reshape([n, c, 2 * d2, 2 * h2, 2 * w2])
}
