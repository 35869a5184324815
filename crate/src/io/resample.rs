//! Resampling between voxel grids in world coordinates: a volume moved onto another grid
//! through the two files' voxel-to-world affines, whatever their orientation, obliquity or
//! voxel size (what nibabel's `resample_from_to` and scipy's `affine_transform` do).
//!
//! Why: a study's sequences are rarely on one grid (T2 at 0.5 mm with diffusion at 2 mm, a
//! FLAIR acquired obliquely); the network reads them voxel by voxel, so they must first share one
//! grid. Images are interpolated trilinearly, labels take the nearest voxel (class indices must
//! not be blended). A point of the target grid outside the source's extent (beyond its first and
//! last voxel centres) is 0: nothing was measured there.

use crate::io::geometry::Affine;
use crate::io::volume::Volume;

/// How values between voxel centres are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Trilinear, for images (scipy's `order=1`).
    Linear,
    /// The nearest voxel centre, for labels (scipy's `order=0`).
    Nearest,
}

/// A voxel grid: its size `[nx, ny, nz]` and voxel-to-world affine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub dims: [usize; 3],
    pub affine: Affine,
}

impl Grid {
    pub fn of(vol: &Volume) -> Grid {
        Grid { dims: vol.dims, affine: vol.affine }
    }

    /// Volume of one voxel (mm³).
    pub fn voxel_volume(&self) -> f64 {
        self.affine.voxel_size().iter().product()
    }
}

/// Positions within this distance (in source voxels) beyond the first or last voxel centre still
/// count as inside: grids whose edges coincide in world space land there up to rounding.
const EDGE: f64 = 1e-4;

/// `vol` (every channel) on `grid`, by `how`. The result carries `grid`'s affine and voxel size.
pub fn resample(vol: &Volume, grid: &Grid, how: Interpolation) -> Result<Volume, String> {
    let inverse = vol.affine.inverse().ok_or("the volume's affine cannot be inverted")?;
    // Target voxel → source voxel: A_src⁻¹ · A_dst.
    let m = inverse.after(&grid.affine);
    let [nx, ny, nz] = grid.dims;
    let n = nx * ny * nz;
    let [sx, sy, sz] = vol.dims;
    let source = vol.voxels();
    let mut data = vec![0f32; vol.channels * n];
    let inside = |p: f64, len: usize| p >= -EDGE && p <= (len as f64 - 1.0) + EDGE;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let (i, j, k) = (x as f64, y as f64, z as f64);
                let p: [f64; 3] = std::array::from_fn(|r| m.0[r][0] * i + m.0[r][1] * j + m.0[r][2] * k + m.0[r][3]);
                if !(inside(p[0], sx) && inside(p[1], sy) && inside(p[2], sz)) {
                    continue;
                }
                let at = x + nx * (y + ny * z);
                match how {
                    Interpolation::Nearest => {
                        let q: [usize; 3] =
                            std::array::from_fn(|r| (p[r] + 0.5).floor().clamp(0.0, (vol.dims[r] - 1) as f64) as usize);
                        let from = q[0] + sx * (q[1] + sy * q[2]);
                        for c in 0..vol.channels {
                            data[c * n + at] = vol.data[c * source + from];
                        }
                    }
                    Interpolation::Linear => {
                        // The cell's lower corner (the last cell for a point on the far edge).
                        let lo: [usize; 3] = std::array::from_fn(|r| {
                            (p[r].floor().max(0.0) as usize).min(vol.dims[r].saturating_sub(2))
                        });
                        let f: [f64; 3] = std::array::from_fn(|r| (p[r] - lo[r] as f64).clamp(0.0, 1.0));
                        let hi: [usize; 3] = std::array::from_fn(|r| (lo[r] + 1).min(vol.dims[r] - 1));
                        for c in 0..vol.channels {
                            let v = |a: usize, b: usize, d: usize| vol.data[c * source + a + sx * (b + sy * d)] as f64;
                            let along_x = |b: usize, d: usize| v(lo[0], b, d) * (1.0 - f[0]) + v(hi[0], b, d) * f[0];
                            let along_y = |d: usize| along_x(lo[1], d) * (1.0 - f[1]) + along_x(hi[1], d) * f[1];
                            data[c * n + at] = (along_y(lo[2]) * (1.0 - f[2]) + along_y(hi[2]) * f[2]) as f32;
                        }
                    }
                }
            }
        }
    }
    let size = grid.affine.voxel_size();
    Ok(Volume {
        dims: grid.dims,
        channels: vol.channels,
        spacing: std::array::from_fn(|r| size[r] as f32),
        affine: grid.affine,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(dims: [usize; 3], affine: Affine, f: impl Fn(usize, usize, usize) -> f32) -> Volume {
        let mut data = Vec::new();
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    data.push(f(x, y, z));
                }
            }
        }
        Volume { dims, channels: 1, spacing: [1.0; 3], affine, data }
    }

    #[test]
    fn a_linear_field_is_reproduced_on_any_grid_inside_the_source() {
        // Trilinear interpolation is exact on a function linear in world coordinates.
        let src_affine = Affine([[2.0, 0.0, 0.0, -10.0], [0.0, 2.0, 0.0, -8.0], [0.0, 0.0, 3.0, 4.0]]);
        let world = |a: &Affine, x: usize, y: usize, z: usize| -> [f64; 3] {
            std::array::from_fn(|r| a.0[r][0] * x as f64 + a.0[r][1] * y as f64 + a.0[r][2] * z as f64 + a.0[r][3])
        };
        let field = |w: [f64; 3]| (0.5 * w[0] - 0.25 * w[1] + 0.125 * w[2] + 3.0) as f32;
        let src = volume([12, 10, 8], src_affine, |x, y, z| field(world(&src_affine, x, y, z)));
        // An oblique target: rotated 30° about z, 1.3 mm voxels, flipped in y.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let dst = Affine([[1.3 * c, 1.3 * s, 0.0, -6.0], [1.3 * s, -1.3 * c, 0.0, 6.0], [0.0, 0.0, 1.3, 6.0]]);
        let grid = Grid { dims: [9, 9, 9], affine: dst };
        let out = resample(&src, &grid, Interpolation::Linear).unwrap();
        let inverse = src_affine.inverse().unwrap().after(&dst);
        let (mut inside, mut outside) = (0, 0);
        for z in 0..9 {
            for y in 0..9 {
                for x in 0..9 {
                    let v = out.data[x + 9 * (y + 9 * z)];
                    let p: [f64; 3] = std::array::from_fn(|r| {
                        inverse.0[r][0] * x as f64
                            + inverse.0[r][1] * y as f64
                            + inverse.0[r][2] * z as f64
                            + inverse.0[r][3]
                    });
                    if (0..3).all(|r| p[r] >= 0.0 && p[r] <= (src.dims[r] - 1) as f64) {
                        let expected = field(world(&dst, x, y, z));
                        assert!((v - expected).abs() < 1e-4, "({x},{y},{z}): {v} vs {expected}");
                        inside += 1;
                    } else if (0..3).any(|r| p[r] < -0.01 || p[r] > src.dims[r] as f64 - 0.99) {
                        assert_eq!(v, 0.0, "({x},{y},{z}) lies outside the source");
                        outside += 1;
                    }
                }
            }
        }
        assert!(inside > 100 && outside > 10, "{inside} inside, {outside} outside");
        assert_eq!(out.affine, dst);
        assert!((out.spacing[0] - 1.3).abs() < 1e-6);
    }

    #[test]
    fn labels_take_the_nearest_voxel_and_the_same_grid_is_the_identity() {
        let a = Affine::diagonal([1.0, 1.0, 2.0]);
        let labels = volume([6, 5, 4], a, |x, y, z| ((x + 2 * y + 3 * z) % 4) as f32);
        let same = resample(&labels, &Grid::of(&labels), Interpolation::Linear).unwrap();
        assert_eq!(same.data, labels.data);
        // Half-size voxels, shifted by a quarter voxel: each target voxel's nearest source voxel
        // is its parent, and no value is blended.
        let fine = Affine([[0.5, 0.0, 0.0, -0.25], [0.0, 0.5, 0.0, -0.25], [0.0, 0.0, 1.0, -0.5]]);
        let out = resample(&labels, &Grid { dims: [12, 10, 8], affine: fine }, Interpolation::Nearest).unwrap();
        for z in 0..8 {
            for y in 0..10 {
                for x in 0..12 {
                    let v = out.data[x + 12 * (y + 10 * z)];
                    let parent = labels.data[x / 2 + 6 * (y / 2 + 5 * (z / 2))];
                    let inside = x >= 1 && y >= 1 && z >= 1 && x <= 10 && y <= 8 && z <= 6;
                    if inside {
                        assert_eq!(v, parent, "({x},{y},{z})");
                    }
                    assert!(v.fract() == 0.0);
                }
            }
        }
    }
}
