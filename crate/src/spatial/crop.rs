//! Receptive-field cropping: a logit depends only on the input within the network's receptive
//! field around its voxel, so LRP from a region only ever reaches the region's bounding box
//! widened by that radius. The LRP pass runs on every activation cropped to that window and
//! its result is pasted into a zero map of the full size (engine.rs `place`, on the host): the
//! same map, for the cost of the window instead of the volume.
//!
//! Why it is exact: each rule recomputes a layer's pre-activations `z` from that layer's
//! (cropped) input, so `z` is wrong only within one kernel radius of the crop's border — where
//! the relevance is zero as long as the margin exceeds the receptive radius by one voxel of the
//! coarsest level. Windows are aligned to the pooling grid, so every 2×2×2 pooling window,
//! strided conv and transposed conv sees the same inputs as in the full pass. Instance-norm
//! statistics come from the full forward pass (frozen in the cropped trace), never from the
//! crop.
//!
//! The same argument holds layer by layer: [`window_reaching`] gives the window of a layer that
//! many voxels of receptive field from the logits, and [`refit`] moves a tensor between two
//! windows; `lrp/unet.rs` runs each layer on its own (nested) window with them.

use std::ops::Range;

use burn::prelude::*;

use crate::model::unet::{Activations, Block, BlockTrace, UNet, UNetConfig, Up};

/// Half-width, in full-resolution voxels, of the input one logit depends on: along the path
/// through the deepest level, every 3×3×3 conv adds one voxel of its level, every 2×2×2 down
/// step one voxel of the finer level, every up step one voxel of the coarser level (alignment of
/// the transposed conv's 2×2×2 footprint, or trilinear interpolation's neighbour).
pub fn receptive_radius(cfg: &UNetConfig) -> usize {
    let s = |l: usize| 1usize << l;
    let encoder: usize = (0..cfg.levels).map(|l| cfg.blocks * s(l)).sum();
    let decoder: usize = (0..cfg.levels - 1).map(|l| cfg.blocks * s(l)).sum();
    let downs: usize = (0..cfg.levels - 1).map(s).sum();
    let ups: usize = (0..cfg.levels - 1).map(|l| s(l + 1) * if cfg.up == Up::Trilinear { 2 } else { 1 }).sum();
    encoder + decoder + downs + ups
}

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

/// The window that holds every logit of the box `[first, last]` (inclusive, tensor axes) with
/// its receptive field, on a grid of `dims`; `None` when it would be (almost) the whole grid,
/// where cropping gains nothing.
pub fn window(cfg: &UNetConfig, first: [usize; 3], last: [usize; 3], dims: [usize; 3]) -> Option<Window> {
    let w = window_of(cfg, first, last, dims);
    let full: usize = dims.iter().product();
    (w.voxels() * 10 < full * 9).then_some(w)
}

/// [`window`], also when it is the whole grid.
pub fn window_of(cfg: &UNetConfig, first: [usize; 3], last: [usize; 3], dims: [usize; 3]) -> Window {
    window_reaching(cfg, receptive_radius(cfg), first, last, dims)
}

/// The box `[first, last]` widened by `reach` voxels and one alignment step more, aligned to
/// the pooling grid and clipped to `dims`: where a layer `reach` voxels (of receptive field)
/// from the logits must be computed for them (nested windows, `lrp/unet.rs`).
pub fn window_reaching(
    cfg: &UNetConfig,
    reach: usize,
    first: [usize; 3],
    last: [usize; 3],
    dims: [usize; 3],
) -> Window {
    let a = cfg.align();
    let margin = reach + a;
    let lo: [usize; 3] = std::array::from_fn(|k| first[k].saturating_sub(margin) / a * a);
    let hi: [usize; 3] = std::array::from_fn(|k| ((last[k] + 1 + margin).div_ceil(a) * a).min(dims[k]));
    Window { lo, hi }
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
    let [n, c, d, h, wd] = t.dims();
    let own = [d, h, wd];
    let range = |k: usize| -> Range<usize> {
        let f = full[k] / own[k];
        w.lo[k] / f..w.hi[k] / f
    };
    t.clone().slice([0..n, 0..c, range(0), range(1), range(2)])
}

fn crop_trace(block: &Block, t: &BlockTrace, w: &Window, full: [usize; 3]) -> BlockTrace {
    BlockTrace {
        input: crop_tensor(&t.input, w, full),
        conv_out: crop_tensor(&t.conv_out, w, full),
        output: crop_tensor(&t.output, w, full),
        // The full pass's statistics: a crop's would differ.
        frozen_norm: t.frozen_norm.clone().or_else(|| block.norm.as_ref().map(|n| n.affine(&t.conv_out))),
    }
}

/// Every activation of `act` cropped to `w`.
pub fn crop_activations(net: &UNet, act: &Activations, w: &Window) -> Activations {
    let [_, _, d, h, wd] = act.x.dims();
    let full = [d, h, wd];
    let c = |t: &Tensor<5>| crop_tensor(t, w, full);
    let traces = |blocks: &[Block], traces: &[BlockTrace]| -> Vec<BlockTrace> {
        blocks.iter().zip(traces).map(|(b, t)| crop_trace(b, t, w, full)).collect()
    };
    Activations {
        x: c(&act.x),
        encoder: net.encoder.iter().zip(&act.encoder).map(|(b, t)| traces(b, t)).collect(),
        up_inputs: act.up_inputs.iter().map(c).collect(),
        up_sampled: act.up_sampled.iter().map(|t| t.as_ref().map(c)).collect(),
        decoder: net.decoder.iter().zip(&act.decoder).map(|(b, t)| traces(b, t)).collect(),
        head_input: c(&act.head_input),
        logits: c(&act.logits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_clipped() {
        let cfg = UNetConfig { levels: 3, blocks: 2, ..UNetConfig::small() };
        // 2·(1+2+4) encoder + 2·(1+2) decoder + (1+2) downs + (2+4) ups = 29.
        assert_eq!(receptive_radius(&cfg), 29);
        let w = window(&cfg, [40, 50, 60], [41, 50, 60], [96, 160, 160]).unwrap();
        assert_eq!(w, Window { lo: [4, 16, 24], hi: [76, 84, 96] });
        assert!(w.lo.iter().chain(&w.hi).all(|v| v % 4 == 0));
        // Near the edge the window stops at the grid; a window covering ≥ 90 % is not worth it.
        assert_eq!(window(&cfg, [0, 0, 0], [0, 0, 0], [96, 160, 160]).unwrap().lo, [0, 0, 0]);
        assert_eq!(window(&cfg, [20, 20, 20], [21, 21, 21], [40, 40, 40]), None);
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
