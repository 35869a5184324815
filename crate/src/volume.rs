//! A multi-sequence volume in memory.

/// Sequences the model reads, in channel order.
pub const SEQUENCES: [&str; 6] = ["T2", "T1 plain", "T1 20 s", "T1 60 s", "T1 120 s", "T1 15 min"];

/// `channels` volumes on one grid. Voxels are in NIfTI file order (x fastest, then y, then z),
/// channel after channel, which is exactly burn's row-major `[channel, z, y, x]` layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// `[nx, ny, nz]`
    pub dims: [usize; 3],
    pub channels: usize,
    /// Voxel size in mm, `[x, y, z]`.
    pub spacing: [f32; 3],
    pub data: Vec<f32>,
}

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

    /// Z-score each channel over its non-zero voxels (the body; air is exactly 0 in the
    /// phantoms), leaving air at 0. The skeleton model expects this normalisation.
    pub fn normalised(&self) -> Volume {
        let mut out = self.clone();
        let n = self.voxels();
        for c in 0..self.channels {
            let ch = &mut out.data[c * n..(c + 1) * n];
            let body: Vec<f64> = ch.iter().filter(|v| **v != 0.0).map(|v| *v as f64).collect();
            if body.is_empty() {
                continue;
            }
            let mean = body.iter().sum::<f64>() / body.len() as f64;
            let var = body.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / body.len() as f64;
            let sd = var.sqrt().max(1e-6);
            for v in ch.iter_mut().filter(|v| **v != 0.0) {
                *v = ((*v as f64 - mean) / sd) as f32;
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
        Volume { dims, channels: self.channels, spacing: self.spacing, data }
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
        Volume { dims, channels: self.channels, spacing: self.spacing, data }
    }
}
