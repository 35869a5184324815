//! Max- and average pooling of 5-D volumes `[batch, channel, depth, height, width]` with a
//! window equal to its stride, per axis (`[2, 2, 2]`, or `[1, 2, 2]` for anisotropic
//! networks), and what LRP needs of them: routing to each window's winner and its transpose,
//! the average's adjoint.
//!
//! burn 0.22 ships pooling only up to 2-D. A window of `f` with stride `f` is a reshape: split
//! every spatial axis into (size / f, f), move the window axes to the end and reduce over them.
//! The reshape stays at rank 6, the most the ndarray backend supports.

use burn::prelude::*;

/// `[n·c·d', h', w', fd·fh·fw]`: each window's values last.
fn windows(x: Tensor<5>, f: [usize; 3]) -> (Tensor<4>, [usize; 5]) {
    let [n, c, d, h, w] = x.dims();
    assert!(
        d % f[0] == 0 && h % f[1] == 0 && w % f[2] == 0,
        "pooling by {f:?} needs sides that are multiples of it, got {d}×{h}×{w}"
    );
    let (d2, h2, w2) = (d / f[0], h / f[1], w / f[2]);
    let taps = f.iter().product();
    let win = x.reshape([n * c * d2, f[0], h2, f[1], w2, f[2]]).permute([0, 2, 4, 1, 3, 5]).reshape([
        n * c * d2,
        h2,
        w2,
        taps,
    ]);
    (win, [n, c, d2, h2, w2])
}

/// The inverse of [`windows`]: `[batch·c·d', h', w', taps]` back to `[batch, c, d, h, w]`.
fn unwindow(win: Tensor<4>, batch: usize, c: usize, f: [usize; 3]) -> Tensor<5> {
    let [ncd, h2, w2, _] = win.dims();
    let d2 = ncd / (batch * c);
    win.reshape([ncd, h2, w2, f[0], f[1], f[2]]).permute([0, 3, 1, 4, 2, 5]).reshape([
        batch,
        c,
        d2 * f[0],
        h2 * f[1],
        w2 * f[2],
    ])
}

/// Max over each window of `f` (stride `f`), as `torch.nn.MaxPool3d(f)`.
pub fn max_pool3d(x: Tensor<5>, f: [usize; 3]) -> Tensor<5> {
    let (win, shape) = windows(x, f);
    win.max_dim(3).reshape(shape)
}

/// 1 at each window's winner (its max; the first on ties), `[n·c·d', h', w', taps]`.
fn winners(x: Tensor<5>, f: [usize; 3]) -> (Tensor<4>, [usize; 5]) {
    let (win, pooled) = windows(x, f);
    // One-hot of the argmax by comparison with 0..taps (burn's `one_hot` validates its input
    // with a synchronous read, which WebGPU in a browser cannot do).
    let shape = win.dims();
    let taps = shape[3] as i64;
    let slots = Tensor::<1, Int>::arange(0..taps, &win.device()).reshape([1, 1, 1, shape[3]]).expand(shape);
    (win.argmax(3).expand(shape).equal(slots).float(), pooled)
}

/// The transpose of [`max_unpool3d`] for one `x`: each window's winner's value of `v` (shaped
/// like `x`), on the pooled grid.
pub fn max_gather3d(x: Tensor<5>, v: Tensor<5>, f: [usize; 3]) -> Tensor<5> {
    let (winner, pooled) = winners(x, f);
    let (values, _) = windows(v, f);
    (winner * values).sum_dim(3).reshape(pooled)
}

/// Routes `r` (shaped like the pooled output) back to the winner of each window of `x`:
/// the gradient of [`max_pool3d`], which is what Zennit propagates through max-pooling.
/// On ties the first voxel of the window (depth-major order) wins, as in PyTorch.
///
/// `r` may hold a batch of `B` relevances for one `x` (batch 1): each is routed to the same
/// winners (the per-voxel region oracle explains many voxels at once).
pub fn max_unpool3d(x: Tensor<5>, r: Tensor<5>, f: [usize; 3]) -> Tensor<5> {
    let [n, c, ..] = x.dims();
    let batch = r.dims()[0];
    let (mut winner, [_, _, d2, h2, w2]) = winners(x, f);
    if batch != n {
        assert_eq!(n, 1, "a batch of relevances needs a single input");
        winner = winner.repeat_dim(0, batch);
    }
    unwindow(winner * r.reshape([batch * c * d2, h2, w2, 1]), batch, c, f)
}

/// Mean over each window of `f` (stride `f`), as `torch.nn.AvgPool3d(f)`.
pub fn avg_pool3d(x: Tensor<5>, f: [usize; 3]) -> Tensor<5> {
    let (win, shape) = windows(x, f);
    win.mean_dim(3).reshape(shape)
}

/// The adjoint of [`avg_pool3d`]: each pooled value spread over its window, divided by its size.
pub fn avg_pool3d_adjoint(g: Tensor<5>, f: [usize; 3]) -> Tensor<5> {
    let [n, c, d2, h2, w2] = g.dims();
    let taps: usize = f.iter().product();
    let spread = g.reshape([n * c * d2, h2, w2, 1]).expand([n * c * d2, h2, w2, taps]) / taps as f32;
    unwindow(spread, n, c, f)
}
