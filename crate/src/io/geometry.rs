//! Where voxels are in the patient: the voxel-to-world affine of a NIfTI file and the
//! orientation code (RAS, LPS, ...) read off it. Data always stays in file order; the affine
//! travels with it so that nothing is ever silently flipped.

use serde::Serialize;

/// Which header field the affine came from (NIfTI-1 §"3 methods").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AffineSource {
    /// Method 3: the `srow_*` rows (`sform_code > 0`); preferred, as nibabel does.
    Sform,
    /// Method 2: quaternion, voxel size and offset (`qform_code > 0`).
    Qform,
    /// Method 1 (both codes 0): `diag(pixdim[1..3])`, origin at voxel 0. nibabel instead
    /// centres an Analyze-style, x-flipped affine here; the NIfTI standard says method 1.
    Pixdim,
    /// A DICOM series: `ImagePositionPatient`, `ImageOrientationPatient` and `PixelSpacing` of
    /// its slices (io/dicom.rs).
    Dicom,
}

/// Voxel `(i, j, k)` to world millimetres: `world = A · (i, j, k, 1)`; the three rows of `A`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [[f64; 4]; 3]);

impl Serialize for Affine {
    /// As the 4×4 matrix nibabel prints.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.rows4().serialize(s)
    }
}

impl Affine {
    pub fn diagonal(spacing: [f32; 3]) -> Affine {
        let s = spacing.map(f64::from);
        Affine([[s[0], 0.0, 0.0, 0.0], [0.0, s[1], 0.0, 0.0], [0.0, 0.0, s[2], 0.0]])
    }

    pub fn rows4(&self) -> [[f64; 4]; 4] {
        let r = self.0;
        [r[0], r[1], r[2], [0.0, 0.0, 0.0, 1.0]]
    }

    /// NIfTI-1 method 2: rotation from the quaternion (b, c, d), `a = √(1 − b² − c² − d²)`,
    /// columns scaled by the voxel size, the third by `qfac` (sign of `pixdim[0]`).
    /// Non-positive voxel sizes count as 1 and a slightly non-unit quaternion is renormalised,
    /// as niftilib does, so that a sloppy header still gives a usable affine.
    pub fn from_quaternion(bcd: [f64; 3], offset: [f64; 3], pixdim: [f64; 4]) -> Affine {
        let [mut b, mut c, mut d] = bcd;
        let a2 = 1.0 - (b * b + c * c + d * d);
        let a = if a2 > 1e-7 {
            a2.sqrt()
        } else {
            let n = (b * b + c * c + d * d).sqrt();
            if n > 0.0 {
                (b, c, d) = (b / n, c / n, d / n);
            }
            0.0
        };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let size = |p: f64| if p > 0.0 && p.is_finite() { p } else { 1.0 };
        let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [size(pixdim[1]), size(pixdim[2]), size(pixdim[3]) * qfac];
        let mut m = [[0.0; 4]; 3];
        for (i, row) in m.iter_mut().enumerate() {
            for j in 0..3 {
                row[j] = r[i][j] * scale[j];
            }
            row[3] = offset[i];
        }
        Affine(m)
    }

    pub fn is_finite(&self) -> bool {
        self.0.iter().flatten().all(|v| v.is_finite())
    }

    /// Why this affine places no voxel grid, if it does not: a non-finite entry, a zero axis,
    /// or axes that (nearly) coincide — |det| below 1e-6 of the product of the axes' lengths.
    pub fn degenerate(&self) -> Option<String> {
        if !self.is_finite() {
            return Some("has non-finite entries".into());
        }
        let size = self.voxel_size();
        if size.iter().any(|s| *s == 0.0) {
            return Some("has a zero voxel axis (a singular matrix)".into());
        }
        let m = self.0;
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if !(det.abs() > 1e-6 * size.iter().product::<f64>()) {
            return Some("is singular (its voxel axes are not independent)".into());
        }
        None
    }

    /// Length of each voxel axis in world millimetres.
    pub fn voxel_size(&self) -> [f64; 3] {
        [0, 1, 2].map(|j| (0..3).map(|i| self.0[i][j].powi(2)).sum::<f64>().sqrt())
    }

    /// The map back from world to voxel coordinates; `None` where the affine is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let a = self.0;
        let m = |i: usize, j: usize| a[i][j];
        let det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
            + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        // The adjugate over the determinant, then the translation taken back.
        let cof = |i: usize, j: usize| {
            let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
            let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
            (m(r0, c0) * m(r1, c1) - m(r0, c1) * m(r1, c0)) / det
        };
        let r: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| cof(i, j)));
        let t: [f64; 3] = std::array::from_fn(|i| -(0..3).map(|j| r[i][j] * a[j][3]).sum::<f64>());
        Some(Affine(std::array::from_fn(|i| [r[i][0], r[i][1], r[i][2], t[i]])))
    }

    /// `self ∘ inner`: `inner` applied first.
    pub fn after(&self, inner: &Affine) -> Affine {
        let (a, b) = (self.0, inner.0);
        Affine(std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let linear = (0..3).map(|k| a[i][k] * b[k][j]).sum::<f64>();
                if j == 3 {
                    linear + a[i][3]
                } else {
                    linear
                }
            })
        }))
    }

    /// Largest absolute difference between two affines and where it is (row, column).
    pub fn max_difference(&self, other: &Affine) -> (f64, usize, usize) {
        let mut worst = (0.0, 0, 0);
        for i in 0..3 {
            for j in 0..4 {
                let d = (self.0[i][j] - other.0[i][j]).abs();
                if d > worst.0 || d.is_nan() {
                    worst = (d, i, j);
                }
            }
        }
        worst
    }

    /// Orientation code: for each voxel axis, the world direction it points to (nibabel's
    /// `aff2axcodes`: R/L for x, A/P for y, S/I for z, world being RAS+). Each voxel axis in
    /// turn takes the world axis it is closest to among those not yet taken; an axis with a
    /// zero column reads `?`.
    pub fn orientation(&self) -> String {
        let size = self.voxel_size();
        let mut taken = [false; 3];
        let mut code = String::new();
        for j in 0..3 {
            let best = (0..3)
                .filter(|i| !taken[*i] && size[j] > 0.0)
                .map(|i| (i, self.0[i][j] / size[j]))
                .filter(|(_, v)| v.abs() > 1e-6)
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
            match best {
                Some((i, v)) => {
                    taken[i] = true;
                    let letters = [['L', 'R'], ['P', 'A'], ['I', 'S']][i];
                    code.push(letters[usize::from(v > 0.0)]);
                }
                None => code.push('?'),
            }
        }
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_quaternion_is_a_scaled_ras_grid() {
        let a = Affine::from_quaternion([0.0; 3], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(a.0, [[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, 2.0], [0.0, 0.0, 4.0, 3.0]]);
        assert_eq!(a.orientation(), "RAS");
        let flipped = Affine::from_quaternion([0.0; 3], [0.0; 3], [-1.0, 1.0, 1.0, 1.0]);
        assert_eq!(flipped.orientation(), "RAI");
    }

    #[test]
    fn half_turn_about_z_gives_lps() {
        // b, c, d = 0, 0, 1: 180° about z, as DICOM-derived files often carry.
        let a = Affine::from_quaternion([0.0, 0.0, 1.0], [0.0; 3], [1.0, 1.0, 1.0, 1.0]);
        assert_eq!(a.orientation(), "LPS");
        assert!((a.0[0][0] + 1.0).abs() < 1e-12 && (a.0[1][1] + 1.0).abs() < 1e-12);
    }

    #[test]
    fn permuted_axes_are_named_in_voxel_order() {
        // i runs anterior, j runs inferior, k runs left.
        let a = Affine([[0.0, 0.0, -1.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0]]);
        assert_eq!(a.orientation(), "AIL");
        assert_eq!(a.voxel_size(), [2.0, 3.0, 1.0]);
    }
}
