//! The toy phantom: a tiny deterministic study for tests, the sanity training and the
//! toy model (the demo uses [`super::abdomen`]).
//!
//! Body ellipse with a fat rim, a liver, one hypervascular tumour (bright at T1 20 s, washed out
//! at 120 s, dark in the 15 min hepatobiliary phase) and a cyst (bright on T2, never enhancing),
//! with Gaussian noise. The full generator (organs, bias field, Rician noise, misregistration)
//! is `phantom::anatomy` and `phantom::scanner`; this one only gives quick tests a plausible
//! study.

use crate::io::geometry::Affine;
use crate::io::volume::{Volume, SEQUENCES};
use crate::rng::SplitMix;

use super::Phantom;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Tissue {
    Air,
    Fat,
    Muscle,
    Liver,
    Tumour,
    Cyst,
}

/// Mean intensity per tissue for T2, T1 plain, T1 20 s, 60 s, 120 s, 15 min (Gd-EOB-DTPA).
fn intensity(t: Tissue) -> [f32; 6] {
    match t {
        Tissue::Air => [0.0; 6],
        Tissue::Fat => [90.0, 110.0, 110.0, 110.0, 110.0, 105.0],
        Tissue::Muscle => [60.0, 50.0, 55.0, 60.0, 60.0, 55.0],
        Tissue::Liver => [45.0, 70.0, 80.0, 100.0, 105.0, 150.0],
        Tissue::Tumour => [75.0, 45.0, 140.0, 110.0, 80.0, 50.0],
        Tissue::Cyst => [160.0, 25.0, 25.0, 25.0, 25.0, 20.0],
    }
}

/// Builds a `dims = [nx, ny, nz]` phantom with 6 sequences; `seed` moves the lesions and the noise.
pub fn phantom(dims: [usize; 3], seed: u64) -> Phantom {
    let mut rng = SplitMix::new(seed);
    let [nx, ny, nz] = dims;
    let n = nx * ny * nz;
    let (fx, fy, fz) = (nx as f32, ny as f32, nz as f32);
    // Lesion centres inside the liver (which sits at x < 0 in body coordinates).
    let tumour = (-0.35 + rng.symmetric(0.08), -0.05 + rng.symmetric(0.1), rng.symmetric(0.2));
    let cyst = (-0.45 + rng.symmetric(0.05), 0.3 + rng.symmetric(0.05), rng.symmetric(0.2));
    let mut tissue = vec![Tissue::Air; n];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                // Body coordinates in [-1, 1].
                let (u, v, w) = (
                    2.0 * (x as f32 + 0.5) / fx - 1.0,
                    2.0 * (y as f32 + 0.5) / fy - 1.0,
                    2.0 * (z as f32 + 0.5) / fz - 1.0,
                );
                let body = (u / 0.92).powi(2) + (v / 0.72).powi(2);
                let liver = ((u + 0.35) / 0.42).powi(2) + ((v - 0.05) / 0.45).powi(2) + (w / 1.3).powi(2);
                let d = |c: (f32, f32, f32), r: f32| {
                    ((u - c.0) / r).powi(2) + ((v - c.1) / r).powi(2) + ((w - c.2) * fz / fx / r).powi(2)
                };
                let t = if body > 1.0 {
                    Tissue::Air
                } else if body > 0.8 {
                    Tissue::Fat
                } else if d(tumour, 0.12) <= 1.0 {
                    Tissue::Tumour
                } else if d(cyst, 0.07) <= 1.0 {
                    Tissue::Cyst
                } else if liver <= 1.0 {
                    Tissue::Liver
                } else {
                    Tissue::Muscle
                };
                tissue[x + nx * (y + ny * z)] = t;
            }
        }
    }
    let mut data = vec![0f32; 6 * n];
    for c in 0..SEQUENCES.len() {
        for (i, t) in tissue.iter().enumerate() {
            if *t != Tissue::Air {
                data[c * n + i] = (intensity(*t)[c] + 4.0 * rng.normal()).max(1.0);
            }
        }
    }
    let label = tissue.iter().map(|t| u8::from(*t == Tissue::Tumour)).collect();
    let spacing = [3.0, 3.0, 5.0];
    Phantom {
        volume: Volume { dims, channels: 6, spacing, affine: Affine::diagonal(spacing), data },
        label,
        lesions: Vec::new(),
    }
}

/// The toy study the engine tests use.
pub const SAMPLE_DIMS: [usize; 3] = [64, 64, 16];
pub const SAMPLE_SEED: u64 = 1;

/// The toy study as a gzipped 4-D NIfTI file (6 volumes).
pub fn sample_nifti() -> Vec<u8> {
    crate::io::nifti::write_nifti(&phantom(SAMPLE_DIMS, SAMPLE_SEED).volume, true)
}
