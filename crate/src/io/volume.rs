//! A multi-sequence volume in memory.

use crate::io::geometry::Affine;

/// Sequences the model reads, in channel order.
pub const SEQUENCES: [&str; 6] = ["T2", "T1 plain", "T1 20 s", "T1 60 s", "T1 120 s", "T1 15 min"];

/// The model's classes, in output order.
pub const CLASSES: [&str; 2] = ["background", "tumour"];

/// Axis order of the cohort's parallel-coordinates plot (indices into [`SEQUENCES`]): plain T1,
/// the four contrast phases, then T2, as in Chlebus et al. 2019.
pub const PLOT_ORDER: [usize; 6] = [1, 2, 3, 4, 5, 0];

/// `channels` volumes on one grid. Voxels are in NIfTI file order (x fastest, then y, then z),
/// channel after channel, which is exactly burn's row-major `[channel, z, y, x]` layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// `[nx, ny, nz]`
    pub dims: [usize; 3],
    pub channels: usize,
    /// Voxel size in mm, `[x, y, z]` (the file's `pixdim`).
    pub spacing: [f32; 3],
    /// Voxel to world (mm); exports carry it so that they overlay the source images.
    pub affine: Affine,
    pub data: Vec<f32>,
}

/// A voxel belongs to the body mask of its sequence when it is brighter than this fraction of
/// the sequence's 99th percentile: air, even with Rician noise, stays below it.
pub const BODY_THRESHOLD: f32 = 0.05;

impl Volume {
    pub fn voxels(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn channel(&self, c: usize) -> &[f32] {
        let n = self.voxels();
        &self.data[c * n..(c + 1) * n]
    }

    /// Index of voxel `(x, y, z)` inside one channel.
    pub fn index(&self, [x, y, z]: [usize; 3]) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    /// Body mask threshold of one channel: [`BODY_THRESHOLD`] × its 99th percentile.
    pub fn body_threshold(&self, c: usize) -> f32 {
        let mut v = self.channel(c).to_vec();
        if v.is_empty() {
            return 0.0;
        }
        let k = (v.len() - 1) * 99 / 100;
        let (_, p99, _) = v.select_nth_unstable_by(k, f32::total_cmp);
        (BODY_THRESHOLD * *p99).max(0.0)
    }

    /// What the model reads: each sequence z-scored over its body mask (voxels above
    /// [`Volume::body_threshold`]), everything outside the mask set to 0.
    pub fn normalised(&self) -> Volume {
        let mut out = self.clone();
        let n = self.voxels();
        for c in 0..self.channels {
            let t = self.body_threshold(c);
            let ch = &mut out.data[c * n..(c + 1) * n];
            let inside = |v: f32| v > t;
            let (count, sum) =
                ch.iter().filter(|v| inside(**v)).fold((0usize, 0f64), |(n, s), v| (n + 1, s + *v as f64));
            if count == 0 {
                ch.fill(0.0);
                continue;
            }
            let mean = sum / count as f64;
            let var = ch.iter().filter(|v| inside(**v)).map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / count as f64;
            let sd = var.sqrt().max(1e-6);
            for v in ch.iter_mut() {
                *v = if inside(*v) { ((*v as f64 - mean) / sd) as f32 } else { 0.0 };
            }
        }
        out
    }

    /// Zero-pad every axis at its end up to a multiple of `align`.
    pub fn padded(&self, align: usize) -> Volume {
        let dims = self.dims.map(|d| d.div_ceil(align) * align);
        if dims == self.dims {
            return self.clone();
        }
        let mut data = vec![0f32; self.channels * dims.iter().product::<usize>()];
        let n_out = dims.iter().product::<usize>();
        for c in 0..self.channels {
            for z in 0..self.dims[2] {
                for y in 0..self.dims[1] {
                    let src = c * self.voxels() + self.index([0, y, z]);
                    let dst = c * n_out + dims[0] * (y + dims[1] * z);
                    data[dst..dst + self.dims[0]].copy_from_slice(&self.data[src..src + self.dims[0]]);
                }
            }
        }
        Volume { dims, channels: self.channels, spacing: self.spacing, affine: self.affine, data }
    }

    /// The inverse of [`Volume::padded`]: keep the first `dims` voxels of each axis.
    pub fn cropped(&self, dims: [usize; 3]) -> Volume {
        let mut data = Vec::with_capacity(self.channels * dims.iter().product::<usize>());
        for c in 0..self.channels {
            for z in 0..dims[2] {
                for y in 0..dims[1] {
                    let src = c * self.voxels() + self.index([0, y, z]);
                    data.extend_from_slice(&self.data[src..src + dims[0]]);
                }
            }
        }
        Volume { dims, channels: self.channels, spacing: self.spacing, affine: self.affine, data }
    }
}
