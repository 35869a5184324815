//! Receptive-field cropping: a logit depends only on the input within the network's receptive
//! field around its voxel, so LRP from a region only ever reaches the region's bounding box
//! widened by that radius ([`window_around`]). The LRP pass runs on activations cropped to
//! windows and its result is pasted into a zero map of the full size: the same map, for the
//! cost of the window instead of the volume.
//!
//! Why it is exact: each rule recomputes a layer's pre-activations `z` from that layer's
//! (cropped) input, so `z` is wrong only within one kernel radius of the crop's border — where
//! the relevance is zero as long as the margin exceeds the receptive radius by one voxel of the
//! coarsest level. Windows are aligned to the coarsest resolution, so every pooling window,
//! strided conv and transposed conv sees the same inputs as in the full pass. Norm statistics
//! come from the full forward pass (frozen in the cropped trace), never from the crop.
//!
//! The same argument holds node by node: `lrp/walk.rs` runs each node on its own (nested)
//! window, and [`refit`] moves a tensor between two windows.

use std::ops::Range;

use burn::prelude::*;

/// A box of the network's (padded) grid in tensor axes `[d, h, w]`: `lo` inclusive, `hi`
/// exclusive, both multiples of the pooling alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl Window {
    pub fn dims(&self) -> [usize; 3] {
        std::array::from_fn(|k| self.hi[k] - self.lo[k])
    }

    pub fn voxels(&self) -> usize {
        self.dims().iter().product()
    }
}

/// The window of the input grid `dims` (tensor axes) a pass of `graph` from the logits in the
/// box `[first, last]` needs: the box widened by the receptive radius and one step of the
/// coarsest resolution, aligned to it and clipped to the grid.
pub fn window_around(graph: &crate::model::Graph, first: [usize; 3], last: [usize; 3], dims: [usize; 3]) -> Window {
    let (a, r) = (graph.align(), graph.receptive_radius());
    let lo = std::array::from_fn(|k| first[k].saturating_sub(r[k] + a[k]) / a[k] * a[k]);
    let hi = std::array::from_fn(|k| ((last[k] + 1 + r[k] + a[k]).div_ceil(a[k]) * a[k]).min(dims[k]));
    Window { lo, hi }
}

/// `t`, a tensor on window `from` (at any level of the U-Net), moved to window `to` of the same
/// grid: cropped where `to` is smaller, zero where `to` reaches beyond `from`.
pub fn refit(t: Tensor<5>, from: &Window, to: &Window) -> Tensor<5> {
    if from == to {
        return t;
    }
    let [n, c, d, h, wd] = t.dims();
    let own = [d, h, wd];
    // The tensor's level: full-resolution voxels per voxel of its own.
    let f: [usize; 3] = std::array::from_fn(|k| from.dims()[k] / own[k]);
    let lo: [usize; 3] = std::array::from_fn(|k| from.lo[k].max(to.lo[k]));
    let hi: [usize; 3] = std::array::from_fn(|k| from.hi[k].min(to.hi[k]).max(lo[k]));
    let out = [n, c, to.dims()[0] / f[0], to.dims()[1] / f[1], to.dims()[2] / f[2]];
    let device = t.device();
    if (0..3).any(|k| lo[k] == hi[k]) {
        return Tensor::zeros(out, &device);
    }
    let within = |base: &[usize; 3], k: usize| (lo[k] - base[k]) / f[k]..(hi[k] - base[k]) / f[k];
    let part = t.slice([0..n, 0..c, within(&from.lo, 0), within(&from.lo, 1), within(&from.lo, 2)]);
    if lo == to.lo && hi == to.hi {
        return part;
    }
    Tensor::zeros(out, &device)
        .slice_assign([0..n, 0..c, within(&to.lo, 0), within(&to.lo, 1), within(&to.lo, 2)], part)
}

/// The whole grid of `dims` as a window.
pub fn whole(dims: [usize; 3]) -> Window {
    Window { lo: [0; 3], hi: dims }
}

/// The bounding box `[first, last]` (inclusive, tensor axes `[d, h, w]`) of the non-zero voxels
/// of `mask` (file order, x fastest, on a grid of `[nx, ny, nz]`); `None` when it is empty.
pub fn bounding_box(mask: &[u8], [nx, ny, _]: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
    let mut b: Option<([usize; 3], [usize; 3])> = None;
    for (i, _) in mask.iter().enumerate().filter(|(_, v)| **v != 0) {
        let p = [i / (nx * ny), (i / nx) % ny, i % nx];
        b = Some(match b {
            None => (p, p),
            Some((lo, hi)) => (std::array::from_fn(|k| lo[k].min(p[k])), std::array::from_fn(|k| hi[k].max(p[k]))),
        });
    }
    b
}

/// `t` cropped to `w`, whatever its resolution: the window is scaled by the ratio of the full
/// grid `full` to the tensor's own size (a power of two per level).
pub fn crop_tensor(t: &Tensor<5>, w: &Window, full: [usize; 3]) -> Tensor<5> {
    if *w == whole(full) {
        return t.clone();
    }
    let [n, c, d, h, wd] = t.dims();
    let own = [d, h, wd];
    let range = |k: usize| -> Range<usize> {
        let f = full[k] / own[k];
        w.lo[k] / f..w.hi[k] / f
    };
    t.clone().slice([0..n, 0..c, range(0), range(1), range(2)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_clipped() {
        use crate::model::unet::{graph, UNet, UNetConfig};
        let dev = crate::backend::cpu_device("cpu").unwrap();
        let cfg = UNetConfig { levels: 3, blocks: 2, ..UNetConfig::small() };
        let net = graph(&UNet::seeded(&cfg, 1, 0.1, &dev));
        // Along the path through the deepest level every 3×3×3 conv adds one voxel of its level,
        // every 2×2×2 down step one of the finer level, every transposed-conv up step one of the
        // coarser: 2·(1+2+4) encoder + 2·(1+2) decoder + (1+2) downs + (2+4) ups = 29.
        assert_eq!(net.receptive_radius(), [29; 3]);
        let w = window_around(&net, [40, 50, 60], [41, 50, 60], [96, 160, 160]);
        assert_eq!(w, Window { lo: [4, 16, 24], hi: [76, 84, 96] });
        assert!(w.lo.iter().chain(&w.hi).all(|v| v % 4 == 0));
        // Near the edge the window stops at the grid.
        assert_eq!(window_around(&net, [0, 0, 0], [0, 0, 0], [96, 160, 160]).lo, [0, 0, 0]);
        assert_eq!(window_around(&net, [20, 20, 20], [21, 21, 21], [40, 40, 40]), whole([40; 3]));
        // (x 1, y 0, z 0) and (x 1, y 1, z 0), as [d, h, w].
        assert_eq!(bounding_box(&[0, 1, 0, 1, 0, 0, 0, 0], [2, 2, 2]), Some(([0, 0, 1], [0, 1, 1])));
        assert_eq!(bounding_box(&[0; 8], [2, 2, 2]), None);
    }

    #[test]
    fn refit_crops_and_pads_at_any_level() {
        use burn::tensor::TensorData;
        let dev = crate::backend::cpu_device("cpu").unwrap();
        // A level-1 tensor (half resolution) on the window [4, 12) × [0, 8) × [8, 16).
        let from = Window { lo: [4, 0, 8], hi: [12, 8, 16] };
        let values: Vec<f32> = (0..2 * 64).map(|i| i as f32 + 1.0).collect();
        let t = Tensor::<5>::from_data(TensorData::new(values.clone(), [1, 2, 4, 4, 4]), &dev);
        let host = |to: Window| refit(t.clone(), &from, &to).into_data().try_to_vec::<f32>().unwrap();
        let at = |v: &[f32], dims: [usize; 3], c: usize, p: [usize; 3]| {
            v[((c * dims[0] + p[0]) * dims[1] + p[1]) * dims[2] + p[2]]
        };
        let old = |c: usize, p: [usize; 3]| at(&values, [4, 4, 4], c, p);
        // Larger: zeros around, the values shifted by (lo − lo') / 2.
        let big = host(Window { lo: [0, 0, 8], hi: [16, 8, 20] });
        assert_eq!(big.len(), 2 * 8 * 4 * 6);
        assert_eq!(at(&big, [8, 4, 6], 1, [2 + 3, 2, 3]), old(1, [3, 2, 3]));
        assert_eq!(at(&big, [8, 4, 6], 0, [1, 0, 0]), 0.0);
        assert_eq!(big.iter().sum::<f32>(), values.iter().sum::<f32>());
        // Smaller: the crop.
        let small = host(Window { lo: [8, 4, 8], hi: [12, 8, 12] });
        let mut expected = Vec::new();
        for c in 0..2 {
            for z in 2..4 {
                for y in 2..4 {
                    for x in 0..2 {
                        expected.push(old(c, [z, y, x]));
                    }
                }
            }
        }
        assert_eq!(small, expected);
        // Overlapping: crop, then pad; disjoint: zeros.
        let shifted = host(Window { lo: [10, 0, 8], hi: [14, 8, 16] });
        assert_eq!(at(&shifted, [2, 4, 4], 0, [0, 1, 1]), old(0, [3, 1, 1]));
        assert_eq!(at(&shifted, [2, 4, 4], 0, [1, 1, 1]), 0.0);
        let apart = host(Window { lo: [12, 0, 8], hi: [16, 8, 16] });
        assert!(apart.len() == 2 * 2 * 4 * 4 && apart.iter().all(|v| *v == 0.0));
    }
}
