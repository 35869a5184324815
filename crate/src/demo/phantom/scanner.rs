//! Imaging a [`Patient`] as the six sequences the model reads, on any grid.
//!
//! Intensities follow liver MRI with Gd-EOB-DTPA (fat-suppressed T1 dynamics, T2 without fat
//! suppression), in units where plain-T1 liver is 100. What makes the task need several
//! sequences: tumours are dark in the hepatobiliary phase (15 min), but so are vessels (bright
//! at 60 s) and cysts (bright on T2, never enhancing); hypervascular tumours light up at 20 s and
//! wash out by 120 s; hypovascular ones have a dark core with an enhancing rim.
//!
//! Artefacts: through-slice partial volume (two samples per voxel along z), in-plane blur,
//! a smooth multiplicative bias field per coil (T2, T1), a small rigid shift of each sequence
//! against the label's grid (breath-holds differ), random anisotropic voxel size, per-patient
//! contrast uptake and scanner gain, and Rician noise.

use crate::io::geometry::Affine;
use crate::io::volume::Volume;
use crate::rng::SplitMix;

use super::anatomy::{LesionKind, Patient, Tissue};
use super::Phantom;

/// Mean signal per sequence: T2, T1 plain, T1 20 s, 60 s, 120 s, 15 min.
fn signal(t: Tissue) -> [f32; 6] {
    match t {
        Tissue::Air | Tissue::Gas => [0.0; 6],
        Tissue::Fat => [120.0, 30.0, 30.0, 32.0, 32.0, 30.0],
        Tissue::Muscle => [40.0, 65.0, 70.0, 85.0, 85.0, 80.0],
        Tissue::Liver => [45.0, 100.0, 115.0, 150.0, 155.0, 210.0],
        Tissue::PortalVein => [25.0, 70.0, 85.0, 260.0, 200.0, 110.0],
        Tissue::HepaticVein => [25.0, 70.0, 75.0, 240.0, 200.0, 105.0],
        Tissue::Aorta => [20.0, 70.0, 320.0, 200.0, 160.0, 100.0],
        Tissue::Bone => [70.0, 110.0, 115.0, 125.0, 125.0, 120.0],
        Tissue::Csf => [250.0, 30.0, 30.0, 30.0, 30.0, 30.0],
        Tissue::Kidney => [95.0, 85.0, 230.0, 210.0, 180.0, 170.0],
        Tissue::Spleen => [110.0, 85.0, 170.0, 165.0, 145.0, 100.0],
        Tissue::Bowel => [180.0, 45.0, 70.0, 90.0, 95.0, 90.0],
        Tissue::Lesion(_) => unreachable!("lesions have their own signal"),
    }
}

fn lesion_signal(kind: LesionKind, rho: f32) -> [f32; 6] {
    match kind {
        LesionKind::Hypervascular => [85.0, 80.0, 220.0, 140.0, 110.0, 65.0],
        LesionKind::Hypovascular if rho > 0.7 => [80.0, 75.0, 150.0, 140.0, 125.0, 75.0],
        LesionKind::Hypovascular => [100.0, 70.0, 75.0, 105.0, 115.0, 60.0],
        LesionKind::Cyst => [300.0, 30.0, 30.0, 30.0, 30.0, 28.0],
    }
}

/// Where and how a grid is imaged: `dims` voxels of `spacing` mm, centred at `centre` (mm).
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub dims: [usize; 3],
    pub spacing: [f32; 3],
    pub centre: [f32; 3],
}

impl Grid {
    /// Voxel to world: RAS+, voxel (n−1)/2 at `centre`.
    pub fn affine(&self) -> Affine {
        let mut a = Affine::diagonal(self.spacing);
        for i in 0..3 {
            a.0[i][3] = f64::from(self.centre[i]) - (self.dims[i] as f64 - 1.0) / 2.0 * f64::from(self.spacing[i]);
        }
        a
    }

    fn world(&self, i: usize, v: f32) -> f32 {
        self.centre[i] + (v - (self.dims[i] as f32 - 1.0) / 2.0) * self.spacing[i]
    }
}

/// The scanner side of one study: drawn from the patient's seed, independent of the grid.
#[derive(Clone, Debug)]
pub struct Acquisition {
    /// Voxel size (mm): in-plane square, thicker slices.
    pub spacing: [f32; 3],
    /// Rigid shift (mm) of each sequence against the label (which is aligned with T1 plain).
    pub shifts: [[f32; 3]; 6],
    /// Bias-field polynomial coefficients, T2 coil and T1 coil.
    bias: [[f32; 6]; 2],
    /// Rician noise σ per sequence, in signal units.
    noise: [f32; 6],
    /// Scanner gain per sequence.
    gain: [f32; 6],
    /// Contrast uptake of this patient (scales every enhancement).
    uptake: f32,
}

impl Acquisition {
    pub fn new(seed: u64) -> Acquisition {
        let mut r = SplitMix::new(seed ^ 0xACC0_5CA7);
        let inplane = 2.7 + 0.6 * r.uniform();
        let spacing = [inplane, inplane, 4.5 + 1.0 * r.uniform()];
        let shifts = std::array::from_fn(|c| match c {
            1 => [0.0; 3],
            0 => [r.symmetric(1.5), r.symmetric(1.5), r.symmetric(3.0)],
            _ => [r.symmetric(1.0), r.symmetric(1.0), r.symmetric(2.0)],
        });
        let bias = std::array::from_fn(|_| std::array::from_fn(|_| r.symmetric(0.18)));
        let level = 4.0 + 4.0 * r.uniform();
        let noise = std::array::from_fn(|c| level * if c == 0 { 1.3 } else { 1.0 } * (0.85 + 0.3 * r.uniform()));
        let gain = std::array::from_fn(|_| 0.7 + 0.7 * r.uniform());
        Acquisition { spacing, shifts, bias, noise, gain, uptake: 0.8 + 0.4 * r.uniform() }
    }

    fn bias_field(&self, coil: usize, p: [f32; 3]) -> f32 {
        let [x, y, z] = p.map(|v| v / 200.0);
        let c = &self.bias[coil];
        (c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * x * y).exp()
    }
}

/// The noiseless signal of the six sequences at `p`, and whether `p` is tumour.
fn sample(patient: &Patient, p: [f32; 3], uptake: f32) -> ([f32; 6], bool) {
    let t = patient.tissue(p);
    let (mut s, tumour) = match t {
        Tissue::Lesion(i) => {
            let l = &patient.lesions[i];
            let base = lesion_signal(l.kind, l.rho(p));
            (std::array::from_fn(|c| base[c] * l.gain[c]), l.kind.is_tumour())
        }
        Tissue::Liver => {
            let ripple: f32 =
                patient.texture.iter().map(|(w, ph)| (w[0] * p[0] + w[1] * p[1] + w[2] * p[2] + ph).sin()).sum();
            (signal(t).map(|v| v * (1.0 + 0.03 * ripple)), false)
        }
        _ => (signal(t), false),
    };
    for c in 2..6 {
        s[c] = s[1] + (s[c] - s[1]) * uptake;
    }
    (s, tumour)
}

/// Shifts one channel by `d` voxels (trilinear, edges clamped).
fn shift(src: &[f32], dims: [usize; 3], d: [f32; 3]) -> Vec<f32> {
    if d.iter().all(|v| v.abs() < 1e-4) {
        return src.to_vec();
    }
    let [nx, ny, nz] = dims;
    let at = |x: isize, y: isize, z: isize| {
        let c = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        src[c(x, nx) + nx * (c(y, ny) + ny * c(z, nz))]
    };
    let split = |v: f32| (v.floor() as isize, v - v.floor());
    let (ox, fx) = split(d[0]);
    let (oy, fy) = split(d[1]);
    let (oz, fz) = split(d[2]);
    let mut out = vec![0f32; src.len()];
    for z in 0..nz as isize {
        for y in 0..ny as isize {
            for x in 0..nx as isize {
                let (sx, sy, sz) = (x + ox, y + oy, z + oz);
                let mut v = 0.0;
                for (dz, wz) in [(0, 1.0 - fz), (1, fz)] {
                    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                            v += wx * wy * wz * at(sx + dx, sy + dy, sz + dz);
                        }
                    }
                }
                out[x as usize + nx * (y as usize + ny * z as usize)] = v;
            }
        }
    }
    out
}

/// In-plane partial-volume blur: a 3-tap kernel along x and y.
fn blur_inplane(v: &mut [f32], dims: [usize; 3]) {
    const W: f32 = 0.15;
    let [nx, ny, nz] = dims;
    let mut tmp = v.to_vec();
    for (step, n) in [(1usize, nx), (nx, ny)] {
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let i = x + nx * (y + ny * z);
                    let pos = if step == 1 { x } else { y };
                    let lo = if pos > 0 { v[i - step] } else { v[i] };
                    let hi = if pos + 1 < n { v[i + step] } else { v[i] };
                    tmp[i] = W * lo + (1.0 - 2.0 * W) * v[i] + W * hi;
                }
            }
        }
        v.copy_from_slice(&tmp);
    }
}

/// Images `patient` on `grid` with `acq`; `seed` draws the noise.
pub fn image(patient: &Patient, acq: &Acquisition, grid: &Grid, seed: u64) -> Phantom {
    let [nx, ny, nz] = grid.dims;
    let n = nx * ny * nz;
    let mut clean = vec![0f32; 6 * n];
    let mut label = vec![0u8; n];
    let dz = grid.spacing[2] / 4.0;
    for z in 0..nz {
        let wz = grid.world(2, z as f32);
        for y in 0..ny {
            let wy = grid.world(1, y as f32);
            for x in 0..nx {
                let wx = grid.world(0, x as f32);
                let i = x + nx * (y + ny * z);
                let (a, ta) = sample(patient, [wx, wy, wz - dz], acq.uptake);
                let (b, tb) = sample(patient, [wx, wy, wz + dz], acq.uptake);
                for c in 0..6 {
                    clean[c * n + i] = 0.5 * (a[c] + b[c]);
                }
                label[i] = u8::from(if ta == tb { ta } else { sample(patient, [wx, wy, wz], acq.uptake).1 });
            }
        }
    }
    let mut rng = SplitMix::new(seed ^ 0x0015_E0F5);
    let mut data = vec![0f32; 6 * n];
    for c in 0..6 {
        let d = [0, 1, 2].map(|k| acq.shifts[c][k] / grid.spacing[k]);
        let mut ch = shift(&clean[c * n..(c + 1) * n], grid.dims, d);
        blur_inplane(&mut ch, grid.dims);
        let coil = usize::from(c != 0);
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let i = x + nx * (y + ny * z);
                    let p = [grid.world(0, x as f32), grid.world(1, y as f32), grid.world(2, z as f32)];
                    let s = ch[i] * acq.bias_field(coil, p);
                    let sigma = acq.noise[c];
                    // Rician: the magnitude of a complex signal with Gaussian noise on both parts.
                    let (re, im) = (s + sigma * rng.normal(), sigma * rng.normal());
                    data[c * n + i] = acq.gain[c] * (re * re + im * im).sqrt();
                }
            }
        }
    }
    let volume = Volume { dims: grid.dims, channels: 6, spacing: grid.spacing, affine: grid.affine(), data };
    Phantom { volume, label, lesions: patient.lesions.clone() }
}
