//! Everything faithfulness measures for one region, in one call: each method's map, its MoRF
//! and LeRF curves and areas, its per-channel shares, and each channel's ablation beside them.
//! The command line (`seglrp faithfulness`, `seglrp cohort --faithfulness`) and the page share it.

use serde::Serialize;

use super::ablation::{ablate, spearman, Ablation};
use super::baseline::Baseline;
use super::methods::{attribute, Method, MethodOptions};
use super::perturbation::{curves, Curves, PerturbationOptions};
use super::probe::{Probe, Score};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvaluationOptions {
    pub methods: MethodOptions,
    pub perturbation: PerturbationOptions,
    pub baseline: Baseline,
    /// Also replace each channel by its baseline in turn (one pass per channel).
    pub ablation: bool,
}

/// One method's result for the region.
#[derive(Clone, Debug, Serialize)]
pub struct MethodResult {
    pub method: String,
    #[serde(flatten)]
    pub curves: Curves,
    /// Per channel, the share of the map's positive relevance (engine's shares).
    pub shares: Option<Vec<f32>>,
    /// Spearman's correlation over the channels of `shares` with the ablation's logit drops.
    pub share_vs_ablation: Option<f32>,
    /// The map on the probe's window (not serialised).
    #[serde(skip)]
    pub map: Vec<f32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub voxels: usize,
    pub unperturbed: Score,
    pub baseline: &'static str,
    pub steps: usize,
    pub patch: usize,
    pub across_channels: bool,
    pub budget: f32,
    pub methods: Vec<MethodResult>,
    /// Per channel, when asked for.
    pub ablation: Option<Vec<Ablation>>,
}

/// Forward passes [`evaluate`] runs (for progress).
pub fn passes(probe: &Probe, methods: &[Method], options: &EvaluationOptions) -> usize {
    let per = options.perturbation.passes();
    methods.iter().map(|m| m.passes(probe, &options.methods) + per).sum::<usize>()
        + if options.ablation { probe.channels } else { 0 }
}

/// Maps, curves and (optionally) the channel ablation for `probe`'s region; `progress(done,
/// total)` after each pass ([`passes`] in all).
pub async fn evaluate(
    probe: &Probe,
    methods: &[Method],
    options: &EvaluationOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Evaluation, String> {
    let total = passes(probe, methods, options);
    let baseline = options.baseline.values(probe, options.methods.seed);
    let mut done = 0;
    let ablation = if options.ablation {
        let a = ablate(probe, &baseline, &mut |d, _| progress(done + d, total)).await?;
        done += probe.channels;
        Some(a)
    } else {
        None
    };
    let mut results = Vec::with_capacity(methods.len());
    for method in methods {
        let map = attribute(probe, method, &baseline, &options.methods, &mut |d, _| progress(done + d, total)).await?;
        done += method.passes(probe, &options.methods);
        progress(done, total);
        let c = curves(probe, &map, &baseline, &options.perturbation, &mut |d, _| progress(done + d, total)).await?;
        done += options.perturbation.passes();
        let shares = crate::engine::positive_shares(&on_inside(probe, &map), probe.channels);
        let share_vs_ablation = match (&shares, &ablation) {
            (Some(s), Some(a)) => spearman(s, &a.iter().map(|a| a.logit_drop).collect::<Vec<_>>()),
            _ => None,
        };
        results.push(MethodResult { method: method.name().to_string(), curves: c, shares, share_vs_ablation, map });
    }
    Ok(Evaluation {
        voxels: probe.voxels,
        unperturbed: probe.unperturbed,
        baseline: options.baseline.name(),
        steps: options.perturbation.steps,
        patch: options.perturbation.patch,
        across_channels: options.perturbation.across_channels,
        budget: options.perturbation.budget,
        methods: results,
        ablation,
    })
}

/// The map with the padding beyond the study zeroed (shares count the study only).
fn on_inside(probe: &Probe, map: &[f32]) -> Vec<f32> {
    let n = probe.inside.len();
    map.iter().enumerate().map(|(i, v)| if probe.inside[i % n] { *v } else { 0.0 }).collect()
}
