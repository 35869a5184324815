//! What a perturbed voxel becomes, what occlusion fills a patch with, and where integrated
//! gradients start.
//!
//! The default, [`Baseline::Background`], is each channel's own background: the median of the
//! study's outermost voxels, what the normalised scan holds where there is no tissue (0 for the
//! bundled model's body z-score, the clipped low end for nnU-Net's CT normalisation). Replacing
//! a voxel by it removes the evidence the voxel carried and nothing else, in a value the network
//! has seen in training everywhere outside the body. The others are offered because each answers
//! a slightly different question: `blur` (Gaussian, σ = 2 voxels) keeps the local mean, so it
//! removes texture and edges but leaves a large homogeneous tumour tumour-bright (curves fall
//! less); `noise` (the channel's mean and spread in the window) removes the value but adds
//! texture the network never saw in that place; `zero` is the raw 0 of Zennit's and Captum's
//! defaults (the mean tissue value after a z-score), for comparing with them.

use crate::rng::SplitMix;

use super::probe::Probe;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Baseline {
    #[default]
    Background,
    Blur,
    Noise,
    Zero,
}

/// The baselines by name, the default first (the page's menu and the command line).
pub const NAMES: [&str; 4] = ["background", "blur", "noise", "zero"];

/// σ of the blur baseline, in voxels.
pub const BLUR_SIGMA: f32 = 2.0;

impl Baseline {
    pub fn parse(name: &str) -> Result<Baseline, String> {
        Ok(match name {
            "background" => Baseline::Background,
            "blur" => Baseline::Blur,
            "noise" => Baseline::Noise,
            "zero" => Baseline::Zero,
            other => return Err(format!("unknown baseline \"{other}\"; choose one of {}", NAMES.join(", "))),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Background => NAMES[0],
            Baseline::Blur => NAMES[1],
            Baseline::Noise => NAMES[2],
            Baseline::Zero => NAMES[3],
        }
    }

    /// The baseline input on the probe's window (`[channels, d, h, w]`); voxels of the padding
    /// beyond the study keep their value (the engine's zeros), except for `zero`.
    pub fn values(&self, probe: &Probe, seed: u64) -> Vec<f32> {
        let n = probe.inside.len();
        let mut out = probe.input.clone();
        match self {
            Baseline::Zero => out.fill(0.0),
            Baseline::Background => {
                for (c, chunk) in out.chunks_mut(n).enumerate() {
                    for (v, _) in chunk.iter_mut().zip(&probe.inside).filter(|(_, i)| **i) {
                        *v = probe.background[c];
                    }
                }
            }
            Baseline::Blur => {
                let dims = probe.window().dims();
                for chunk in out.chunks_mut(n) {
                    let blurred = gaussian_blur(chunk, dims, BLUR_SIGMA);
                    for ((v, b), _) in chunk.iter_mut().zip(blurred).zip(&probe.inside).filter(|(_, i)| **i) {
                        *v = b;
                    }
                }
            }
            Baseline::Noise => {
                let mut rng = SplitMix::new(seed);
                for chunk in out.chunks_mut(n) {
                    let values: Vec<f64> =
                        chunk.iter().zip(&probe.inside).filter(|(_, i)| **i).map(|(v, _)| *v as f64).collect();
                    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len().max(1) as f64;
                    let sd = var.sqrt() as f32;
                    for (v, _) in chunk.iter_mut().zip(&probe.inside).filter(|(_, i)| **i) {
                        *v = mean as f32 + sd * rng.normal();
                    }
                }
            }
        }
        out
    }
}

/// A separable Gaussian blur of one channel `[d, h, w]`, the kernel cut at 3σ and renormalised
/// where it leaves the volume (edges are not darkened).
pub fn gaussian_blur(v: &[f32], dims: [usize; 3], sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let mut cur = v.to_vec();
    let strides = [dims[1] * dims[2], dims[2], 1];
    for axis in 0..3 {
        let len = dims[axis] as isize;
        let mut next = vec![0f32; cur.len()];
        for (i, out) in next.iter_mut().enumerate() {
            let pos = ((i / strides[axis]) % dims[axis]) as isize;
            let (mut sum, mut weight) = (0f32, 0f32);
            for (k, w) in kernel.iter().enumerate() {
                let p = pos + k as isize - radius;
                if (0..len).contains(&p) {
                    sum += w * cur[(i as isize + (p - pos) * strides[axis] as isize) as usize];
                    weight += w;
                }
            }
            *out = sum / weight;
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constants_and_spreads_a_spike() {
        let dims = [5, 6, 7];
        let flat = vec![2.5f32; 5 * 6 * 7];
        assert!(gaussian_blur(&flat, dims, 2.0).iter().all(|v| (v - 2.5).abs() < 1e-5));
        let mut spike = vec![0f32; 5 * 6 * 7];
        spike[(2 * 6 + 3) * 7 + 3] = 1.0;
        let b = gaussian_blur(&spike, dims, 1.0);
        let centre = b[(2 * 6 + 3) * 7 + 3];
        // A unit spike blurred by σ = 1: the centre keeps (2π)^-3/2 of it, within the cut kernel.
        assert!((centre - (2.0 * std::f32::consts::PI).powf(-1.5)).abs() < 0.01, "{centre}");
        assert!(b[(2 * 6 + 3) * 7 + 4] < centre && b[(2 * 6 + 3) * 7 + 4] > 0.0);
    }

    #[test]
    fn names_round_trip() {
        for name in NAMES {
            assert_eq!(Baseline::parse(name).unwrap().name(), name);
        }
        assert!(Baseline::parse("mean").unwrap_err().contains("background, blur"));
    }
}
