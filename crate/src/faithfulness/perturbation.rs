//! Region perturbation (Samek et al. 2017, "Evaluating the visualization of what a deep neural
//! network has learned") for a region of a 3D segmentation.
//!
//! The input is cut into units — single values of one channel by default, or cubic patches of
//! `patch`³ voxels, of one channel or of all channels at once — and a map orders them by their
//! summed relevance. Step `k` of `steps` replaces the first `⌈k·N/steps⌉` units by the baseline,
//! most relevant first (MoRF) and least relevant first (LeRF), and runs the network: the
//! region's summed logit `s_k` and its Dice are the curves. `N`, the budget, is `budget` times
//! the region's size in units (the region's voxels, times the channels when units are
//! per-channel), at most every unit of the window: a tumour's map is judged on the few
//! thousand values that could explain it, not on a volume of mostly irrelevant ones.
//!
//! `AOPC = 1/(steps+1) Σ_{k=0..steps} (s_0 − s_k) / |s_0|` (Samek's area over the
//! perturbation curve, normalised by the unperturbed score): a faithful map has a high MoRF
//! AOPC (removing what it calls relevant destroys the region) and a low LeRF AOPC (removing
//! what it calls irrelevant does not); `ABPC = AOPC_MoRF − AOPC_LeRF` (the area between the
//! curves) sums both. Only units in the study count (not the padding beyond it); ties in the
//! map are broken by a seeded shuffle, so that a flat map is not ordered by position.

use serde::Serialize;

use crate::rng::SplitMix;

use super::probe::{Probe, Score};

#[derive(Clone, Debug, PartialEq)]
pub struct PerturbationOptions {
    pub steps: usize,
    /// Edge of a unit's cube, in voxels.
    pub patch: usize,
    /// A unit spans every channel of its patch (else one channel).
    pub across_channels: bool,
    /// Units replaced by the last step, in multiples of the region's size in units.
    pub budget: f32,
    pub seed: u64,
}

impl Default for PerturbationOptions {
    fn default() -> Self {
        PerturbationOptions { steps: 20, patch: 1, across_channels: false, budget: 2.0, seed: 2017 }
    }
}

impl PerturbationOptions {
    /// Forward passes of one map's two curves.
    pub fn passes(&self) -> usize {
        2 * self.steps.max(1)
    }
}

/// The MoRF and LeRF curves of one map.
#[derive(Clone, Debug, Serialize)]
pub struct Curves {
    /// Units replaced at each step (0 first).
    pub units: Vec<usize>,
    pub morf: Vec<Score>,
    pub lerf: Vec<Score>,
    pub aopc_morf: f32,
    pub aopc_lerf: f32,
    /// `aopc_morf − aopc_lerf`.
    pub abpc: f32,
    /// The same areas for Dice: `1/(steps+1) Σ_k (1 − Dice_k)`.
    pub dice_aopc_morf: f32,
    pub dice_aopc_lerf: f32,
}

/// `1/(k+1) Σ (s_0 − s_k) / |s_0|` over a curve.
pub fn aopc(curve: &[Score]) -> f32 {
    let s0 = curve[0].logit;
    let scale = s0.abs().max(f32::MIN_POSITIVE);
    curve.iter().map(|s| (s0 - s.logit) / scale).sum::<f32>() / curve.len() as f32
}

fn dice_aopc(curve: &[Score]) -> f32 {
    curve.iter().map(|s| 1.0 - s.dice).sum::<f32>() / curve.len() as f32
}

/// The units of the probe's window: each a list of value indices into `[channels, d, h, w]`.
fn units(probe: &Probe, options: &PerturbationOptions) -> Vec<Vec<usize>> {
    let [d, h, w] = probe.window().dims();
    let n = d * h * w;
    let p = options.patch.max(1);
    let mut out = Vec::new();
    let groups: Vec<Vec<usize>> = if options.across_channels {
        vec![(0..probe.channels).collect()]
    } else {
        (0..probe.channels).map(|c| vec![c]).collect()
    };
    for channels in &groups {
        for z0 in (0..d).step_by(p) {
            for y0 in (0..h).step_by(p) {
                for x0 in (0..w).step_by(p) {
                    let mut unit = Vec::new();
                    for z in z0..(z0 + p).min(d) {
                        for y in y0..(y0 + p).min(h) {
                            for x in x0..(x0 + p).min(w) {
                                let i = (z * h + y) * w + x;
                                if probe.inside[i] {
                                    unit.extend(channels.iter().map(|c| c * n + i));
                                }
                            }
                        }
                    }
                    if !unit.is_empty() {
                        out.push(unit);
                    }
                }
            }
        }
    }
    out
}

/// The MoRF and LeRF curves of `map` (on the probe's window) with `baseline` values;
/// `progress(done, total)` after each forward pass.
pub async fn curves(
    probe: &Probe,
    map: &[f32],
    baseline: &[f32],
    options: &PerturbationOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Curves, String> {
    if map.len() != probe.input.len() || baseline.len() != probe.input.len() {
        return Err("the map and the baseline must lie on the region's window".into());
    }
    let units = units(probe, options);
    let relevance: Vec<f32> = units.iter().map(|u| u.iter().map(|&i| map[i]).sum()).collect();
    // Ties broken by a seeded shuffle, then a stable sort by relevance.
    let mut order: Vec<usize> = (0..units.len()).collect();
    let mut rng = SplitMix::new(options.seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    let per_unit = if options.across_channels { 1 } else { probe.channels };
    let size = probe.voxels * per_unit / options.patch.max(1).pow(3);
    let budget = ((options.budget * size.max(1) as f32).ceil() as usize).clamp(1, units.len().max(1));
    let steps = options.steps.max(1);
    let counts: Vec<usize> = (0..=steps).map(|k| (k * budget).div_ceil(steps).min(units.len())).collect();
    let total = 2 * steps;
    let mut curves = Vec::with_capacity(2);
    let reversed: Vec<usize> = order.iter().rev().copied().collect();
    for (n, order) in [order, reversed].into_iter().enumerate() {
        let mut x = probe.input.clone();
        let mut curve = vec![probe.unperturbed];
        for k in 1..counts.len() {
            for &u in &order[counts[k - 1]..counts[k]] {
                for &i in &units[u] {
                    x[i] = baseline[i];
                }
            }
            curve.push(probe.score(&x).await?);
            progress(n * steps + k, total);
        }
        curves.push(curve);
    }
    let lerf = curves.pop().expect("two curves");
    let morf = curves.pop().expect("two curves");
    let (aopc_morf, aopc_lerf) = (aopc(&morf), aopc(&lerf));
    Ok(Curves {
        units: counts,
        aopc_morf,
        aopc_lerf,
        abpc: aopc_morf - aopc_lerf,
        dice_aopc_morf: dice_aopc(&morf),
        dice_aopc_lerf: dice_aopc(&lerf),
        morf,
        lerf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aopc_is_the_mean_relative_drop() {
        let s = |logit: f32| Score { logit, dice: 1.0 };
        // Drops 0, 0.5, 1 of s0 = 4: mean 0.5.
        assert!((aopc(&[s(4.0), s(2.0), s(0.0)]) - 0.5).abs() < 1e-6);
        // A curve that rises has a negative area.
        assert!(aopc(&[s(2.0), s(3.0)]) < 0.0);
    }
}
