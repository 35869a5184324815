//! Attribution methods beside LRP's composites, for the same region on the same engine, named
//! as Captum and Zennit name them. Each explains the region's summed logit
//! `S(x) = Σ_{a∈A} y_{c(a)}(a)` ([`Score::logit`](super::probe::Score)); `b` is the baseline
//! (baseline.rs) and `∇S` the gradient (the LRP walk without rules, `Composite::Gradient`).
//!
//! | name | map | reference |
//! |---|---|---|
//! | an LRP composite (`EpsilonGammaBox`, …) | the region map `M_A = Σ_a M_a / ΣM_a` | Zennit |
//! | `gradient` | `∇S(x)` | Captum `Saliency(abs=False)`, Zennit `Gradient` |
//! | `gradient_x_input` | `x ⊙ ∇S(x)` | Captum `InputXGradient` |
//! | `integrated_gradients` | `(x − b) ⊙ 1/n Σ_{k=1..n} ∇S(b + k/n (x − b))` | Zennit `IntegratedGradients` |
//! | `smoothgrad` | `1/n Σ_k ∇S(x + ε_k)`, `ε_k ~ N(0, (σ·(max x − min x))²)`, `ε_n = 0` | Zennit `SmoothGrad` |
//! | `occlusion` | per voxel, the mean over its patches P of `S(x) − S(x with P = b)` | Captum `Occlusion` |
//! | `random` | uniform in [0, 1), seeded: the floor | |
//!
//! Occlusion replaces all channels of a cubic patch at once (Captum's window over the channel
//! axis), patches starting every `stride` voxels from the window's corner, the last one cut at
//! the far edge (Captum's `ceil((size − patch) / stride) + 1` positions per axis).

use crate::lrp::Composite;
use crate::rng::SplitMix;

use super::probe::Probe;

/// The methods other than LRP composites, by name (the page's menu and the command line).
pub const NAMES: [&str; 6] =
    ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "occlusion", "random"];

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// An LRP composite, by its name.
    Lrp {
        name: String,
        composite: Composite,
    },
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
    Occlusion,
    Random,
}

/// The methods' parameters (Zennit's defaults where it has them).
#[derive(Clone, Debug, PartialEq)]
pub struct MethodOptions {
    /// Integrated gradients' steps along the path.
    pub ig_steps: usize,
    /// SmoothGrad's samples (the last one without noise, as in Zennit).
    pub samples: usize,
    /// SmoothGrad's σ as a fraction of the input's range.
    pub noise_level: f32,
    /// Occlusion's patch edge and stride, in voxels.
    pub occlusion_patch: usize,
    pub occlusion_stride: usize,
    /// Seeds SmoothGrad's noise and the random map.
    pub seed: u64,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            ig_steps: 20,
            samples: 20,
            noise_level: 0.1,
            occlusion_patch: 8,
            occlusion_stride: 8,
            seed: 2017,
        }
    }
}

impl Method {
    /// A method by name; LRP composites by Zennit's names, made by `composite`.
    pub fn parse(name: &str, composite: impl Fn(&str) -> Result<Composite, String>) -> Result<Method, String> {
        Ok(match name {
            "gradient" => Method::Gradient,
            "gradient_x_input" => Method::GradientXInput,
            "integrated_gradients" => Method::IntegratedGradients,
            "smoothgrad" => Method::SmoothGrad,
            "occlusion" => Method::Occlusion,
            "random" => Method::Random,
            other => match composite(other) {
                Ok(composite) => Method::Lrp { name: other.to_string(), composite },
                Err(_) => {
                    return Err(format!(
                        "unknown method \"{other}\"; choose an LRP composite ({}) or one of {}",
                        Composite::NAMES.join(", "),
                        NAMES.join(", ")
                    ))
                }
            },
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Method::Lrp { name, .. } => name,
            Method::Gradient => NAMES[0],
            Method::GradientXInput => NAMES[1],
            Method::IntegratedGradients => NAMES[2],
            Method::SmoothGrad => NAMES[3],
            Method::Occlusion => NAMES[4],
            Method::Random => NAMES[5],
        }
    }

    /// Forward (and backward) passes the map costs, for progress.
    pub fn passes(&self, probe: &Probe, options: &MethodOptions) -> usize {
        match self {
            Method::Lrp { .. } | Method::Gradient | Method::GradientXInput => 1,
            Method::IntegratedGradients => options.ig_steps,
            Method::SmoothGrad => options.samples,
            Method::Occlusion => {
                occlusion_starts(probe.window().dims(), options.occlusion_patch, options.occlusion_stride)
                    .iter()
                    .map(Vec::len)
                    .product()
            }
            Method::Random => 0,
        }
    }
}

/// The method's map of the probe's region on its window (`[channels, d, h, w]`);
/// `progress(done, total)` after each pass.
pub async fn attribute(
    probe: &Probe,
    method: &Method,
    baseline: &[f32],
    options: &MethodOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>, String> {
    let x = &probe.input;
    let total = method.passes(probe, options);
    Ok(match method {
        Method::Lrp { composite, .. } => probe.region_map(composite).await?,
        Method::Gradient => probe.gradient(x).await?,
        Method::GradientXInput => probe.gradient(x).await?.iter().zip(x).map(|(g, x)| g * x).collect(),
        Method::IntegratedGradients => {
            let n = options.ig_steps.max(1);
            let mut sum = vec![0f32; x.len()];
            for k in 1..=n {
                // Zennit's path points: linspace(1/n, 1, n).
                let alpha = k as f32 / n as f32;
                let point: Vec<f32> = x.iter().zip(baseline).map(|(x, b)| b + alpha * (x - b)).collect();
                for (s, g) in sum.iter_mut().zip(probe.gradient(&point).await?) {
                    *s += g / n as f32;
                }
                progress(k, total);
            }
            sum.iter().zip(x.iter().zip(baseline)).map(|(s, (x, b))| s * (x - b)).collect()
        }
        Method::SmoothGrad => {
            let n = options.samples.max(1);
            let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
            let sd = options.noise_level * (hi - lo);
            let mut rng = SplitMix::new(options.seed);
            let mut sum = vec![0f32; x.len()];
            for k in 0..n {
                // As in Zennit, the last sample is the input itself (n = 1 is the gradient).
                let point: Vec<f32> =
                    if k + 1 == n { x.clone() } else { x.iter().map(|v| v + sd * rng.normal()).collect() };
                for (s, g) in sum.iter_mut().zip(probe.gradient(&point).await?) {
                    *s += g / n as f32;
                }
                progress(k + 1, total);
            }
            sum
        }
        Method::Occlusion => occlusion(probe, baseline, options, &mut |d| progress(d, total)).await?,
        Method::Random => {
            let mut rng = SplitMix::new(options.seed);
            x.iter().map(|_| rng.uniform()).collect()
        }
    })
}

/// Per axis, where occlusion's patches start (Captum's positions).
pub fn occlusion_starts(dims: [usize; 3], patch: usize, stride: usize) -> [Vec<usize>; 3] {
    std::array::from_fn(|k| {
        let p = patch.clamp(1, dims[k]);
        let s = stride.clamp(1, p);
        let count = (dims[k] - p).div_ceil(s) + 1;
        (0..count).map(|i| i * s).collect()
    })
}

async fn occlusion(
    probe: &Probe,
    baseline: &[f32],
    options: &MethodOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>, String> {
    let dims = probe.window().dims();
    let [d, h, w] = dims;
    let n = d * h * w;
    let starts = occlusion_starts(dims, options.occlusion_patch, options.occlusion_stride);
    let s0 = probe.unperturbed.logit;
    let (mut sum, mut count) = (vec![0f32; n], vec![0u32; n]);
    let mut x = probe.input.clone();
    let mut done = 0;
    for &z0 in &starts[0] {
        for &y0 in &starts[1] {
            for &x0 in &starts[2] {
                let patch: Vec<usize> = (z0..(z0 + options.occlusion_patch).min(d))
                    .flat_map(|z| (y0..(y0 + options.occlusion_patch).min(h)).map(move |y| (z, y)))
                    .flat_map(|(z, y)| (x0..(x0 + options.occlusion_patch).min(w)).map(move |x| (z * h + y) * w + x))
                    .collect();
                for c in 0..probe.channels {
                    for &i in &patch {
                        x[c * n + i] = baseline[c * n + i];
                    }
                }
                let drop = s0 - probe.score(&x).await?.logit;
                for c in 0..probe.channels {
                    for &i in &patch {
                        x[c * n + i] = probe.input[c * n + i];
                    }
                }
                for &i in &patch {
                    sum[i] += drop;
                    count[i] += 1;
                }
                done += 1;
                progress(done);
            }
        }
    }
    let per_voxel: Vec<f32> = sum.iter().zip(&count).map(|(s, c)| if *c > 0 { s / *c as f32 } else { 0.0 }).collect();
    Ok((0..probe.channels).flat_map(|_| per_voxel.iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occlusion_positions_are_captums() {
        // ceil((size - patch) / stride) + 1 per axis, the last one cut at the edge.
        let s = occlusion_starts([16, 10, 3], 4, 3);
        assert_eq!(s[0], vec![0, 3, 6, 9, 12]);
        assert_eq!(s[1], vec![0, 3, 6]);
        // A patch larger than the axis covers it once.
        assert_eq!(s[2], vec![0]);
    }

    #[test]
    fn names_parse() {
        let lrp = |n: &str| Composite::by_name(n).ok_or_else(|| "no".to_string());
        for name in NAMES {
            assert_eq!(Method::parse(name, lrp).unwrap().name(), name);
        }
        assert!(matches!(Method::parse("EpsilonPlus", lrp).unwrap(), Method::Lrp { .. }));
        let e = Method::parse("saliency", lrp).unwrap_err();
        assert!(e.contains("EpsilonGammaBox") && e.contains("occlusion"), "{e}");
    }
}
