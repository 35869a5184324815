//! Windowed studies: a volume too large for one forward pass (a 256×256×128 study needs
//! ~4 GB of activations) is kept on the host, and every forward pass runs on a window of it.
//!
//! Why it is exact: a logit depends only on the input within the receptive radius around its
//! voxel (crop.rs), so the logits of a core box equal the whole-volume pass's when the window
//! around it adds that radius (plus one coarsest voxel) and is aligned to the pooling grid —
//! for networks whose layers are local. Instance norm is not: its statistics span the whole
//! volume, so such models are never windowed (they keep the whole-volume pass).
//!
//! Segmentation tiles the grid into cores and keeps each core's logits; an explanation runs
//! its forward pass on its own window, and a region whose window would be too large is split
//! into cores whose maps add up (a region map is a sum over its voxels; README "LRP").

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::model::Graph;
use crate::spatial::crop::{self, Window};

/// The normalised, padded study on the host: `[channels, d, h, w]`, row-major.
#[derive(Debug)]
pub struct HostInput {
    pub data: Vec<f32>,
    pub channels: usize,
    /// Padded grid, tensor axes `[d, h, w]`.
    pub dims: [usize; 3],
}

impl HostInput {
    /// The input inside `w`, on `device`.
    pub fn window(&self, w: &Window, device: &Device) -> Tensor<5> {
        let [sd, sh, sw] = w.dims();
        Tensor::from_data(TensorData::new(self.values_in(w), [1, self.channels, sd, sh, sw]), device)
    }

    /// The input inside `w` (which must lie in the grid), `[channels, d, h, w]` row-major.
    pub fn values_in(&self, w: &Window) -> Vec<f32> {
        let [_, h, wd] = self.dims;
        let sw = w.dims()[2];
        let mut out = Vec::with_capacity(self.channels * w.voxels());
        for c in 0..self.channels {
            for z in w.lo[0]..w.hi[0] {
                for y in w.lo[1]..w.hi[1] {
                    let start = ((c * self.dims[0] + z) * h + y) * wd + w.lo[2];
                    out.extend_from_slice(&self.data[start..start + sw]);
                }
            }
        }
        out
    }
}

/// Whether the model's logits are local (no statistics over the whole volume), so that
/// windows give the whole-volume pass's numbers.
pub fn windowable(graph: &Graph) -> bool {
    !graph.has_volume_statistics()
}

/// Cores (inclusive `[first, last]`, tensor axes) covering the box `[first, last]` of a grid of
/// `dims`, each with a window ([`crop::window_around`]) of at most `max_window` voxels where
/// that can be had (a core is never split below one aligned step per axis).
pub fn cores(
    graph: &Graph,
    first: [usize; 3],
    last: [usize; 3],
    dims: [usize; 3],
    max_window: usize,
) -> Vec<([usize; 3], [usize; 3])> {
    let a = graph.align();
    // Core sizes, multiples of the alignment, halved along the largest axis until every core's
    // window fits (a core at the grid's edge has a smaller window than one in the middle).
    let mut size: [usize; 3] = std::array::from_fn(|k| (last[k] + 1 - first[k] / a[k] * a[k]).div_ceil(a[k]) * a[k]);
    let largest = |cores: &[([usize; 3], [usize; 3])]| {
        cores.iter().map(|(f, l)| crop::window_around(graph, *f, *l, dims).voxels()).max().unwrap_or(0)
    };
    loop {
        let all = split(first, last, size, a);
        let now = largest(&all);
        if now <= max_window {
            return all;
        }
        // The largest axis first; an axis whose halving leaves the largest window as large is
        // skipped, and when none shrinks it the cores stay as they are: a network whose
        // receptive field spans the grid gains nothing from smaller cores, each of which would
        // run the same whole-grid pass.
        let mut axes = [0, 1, 2];
        axes.sort_by_key(|&k| std::cmp::Reverse((size[k], k)));
        let halved = axes.into_iter().filter(|&k| size[k] > a[k]).find_map(|k| {
            let mut s = size;
            s[k] = (s[k] / 2).div_ceil(a[k]) * a[k];
            (largest(&split(first, last, s, a)) < now).then_some(s)
        });
        match halved {
            Some(s) => size = s,
            None => return all,
        }
    }
}

/// The box `[first, last]` cut into cores of `size`, starting on the alignment grid so that
/// neighbouring windows line up.
fn split(first: [usize; 3], last: [usize; 3], size: [usize; 3], a: [usize; 3]) -> Vec<([usize; 3], [usize; 3])> {
    let starts = |k: usize| -> Vec<usize> { (first[k] / a[k] * a[k]..=last[k]).step_by(size[k]).collect() };
    let mut out = Vec::new();
    for &z in &starts(0) {
        for &y in &starts(1) {
            for &x in &starts(2) {
                let lo = [z, y, x];
                let f: [usize; 3] = std::array::from_fn(|k| lo[k].max(first[k]));
                let l: [usize; 3] = std::array::from_fn(|k| (lo[k] + size[k] - 1).min(last[k]));
                out.push((f, l));
            }
        }
    }
    out
}

/// The predicted class (argmax; ties go to the lower class) per voxel of the padded grid, core
/// by core; `progress(done, total)` after each.
pub async fn segmentation(
    graph: &Graph,
    input: &HostInput,
    device: &Device,
    max_window: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<u8>, String> {
    let dims = input.dims;
    let all = cores(graph, [0; 3], dims.map(|d| d - 1), dims, max_window);
    let mut out = vec![0u8; dims.iter().product()];
    for (i, (first, last)) in all.iter().enumerate() {
        let w = crop::window_around(graph, *first, *last, dims);
        let logits = graph.forward(input.window(&w, device));
        let fg = crate::backend::read(crate::ops::predicted(logits)).await?;
        let [_, wh, ww] = w.dims();
        for z in first[0]..=last[0] {
            for y in first[1]..=last[1] {
                for x in first[2]..=last[2] {
                    let local = ((z - w.lo[0]) * wh + (y - w.lo[1])) * ww + (x - w.lo[2]);
                    out[(z * dims[1] + y) * dims[2] + x] = fg[local] as u8;
                }
            }
        }
        progress(i + 1, all.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_cover_the_box_once_and_fit_their_windows() {
        let cfg = crate::model::unet::UNetConfig { levels: 3, blocks: 2, ..crate::model::unet::UNetConfig::small() };
        let device = crate::backend::cpu_device("cpu").expect("a CPU backend");
        let cfg = crate::model::unet::graph(&crate::model::unet::UNet::seeded(&cfg, 1, 0.1, &device));
        let dims = [128, 256, 256];
        let max = 1 << 20;
        let all = cores(&cfg, [0; 3], [127, 255, 255], dims, max);
        assert!(all.len() > 1);
        let mut seen = vec![0u8; dims.iter().product()];
        for (f, l) in &all {
            assert!(crop::window_around(&cfg, *f, *l, dims).voxels() <= max, "{f:?}..{l:?}");
            for z in f[0]..=l[0] {
                for y in f[1]..=l[1] {
                    for x in f[2]..=l[2] {
                        seen[(z * dims[1] + y) * dims[2] + x] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|v| *v == 1));
        // A small box stays one core, also when it straddles the alignment grid.
        assert_eq!(cores(&cfg, [10, 20, 30], [12, 25, 31], dims, max), vec![([10, 20, 30], [12, 25, 31])]);
        assert_eq!(cores(&cfg, [1, 113, 119], [56, 115, 120], dims, max).len(), 1);
    }
}
