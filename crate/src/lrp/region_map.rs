//! Relevance maps for a region of output voxels, exactly, in two passes.
//!
//! The region map of Chlebus et al. 2019 normalises each voxel's map before summing:
//! `M_A = Σ_{a∈A} M_a / ΣM_a`, where `M_a = L(y_a e_a)` is the input relevance when LRP starts
//! from the logit `y_a` at voxel `a` alone, and `ΣM_a` its sum over the input. For a fixed
//! forward pass every rule is linear in the relevance it starts from (`L` is a matrix), so
//! `ΣM_a = 1ᵀ L y_a e_a = y_a (Lᵀ1)_a` and `M_A = L(Σ_{a∈A} e_a / (Lᵀ1)_a)`:
//! one pass of `Lᵀ` and one LRP pass, whatever the size of `A`. Both passes share the rules
//! made for this forward pass ([`Plan`]): `Lᵀ` is each node's transpose
//! ([`super::rules::PreparedRule::transpose`]), walked from the input to the logits
//! ([`transpose`]).
//! [`naive_region`] does the paper's per-voxel loop (batched); it is the test oracle.
//!
//! Voxels whose `|ΣM_a|` is below [`LEFT_OUT_FRACTION`] of the largest in the region are left
//! out (their normalised map would be noise divided by almost nothing) and counted.

use burn::prelude::*;

use super::composite::Composite;
use super::target::{start_for, Target};
use super::walk::{grid, propagate, transpose, Pass, Plan};
use crate::model::graph::{Graph, Trace};
use crate::spatial::crop::{crop_tensor, refit, whole};

/// A voxel `a` of the region is left out when `|ΣM_a| < LEFT_OUT_FRACTION · max_{b∈A} |ΣM_b|`.
pub const LEFT_OUT_FRACTION: f32 = 1e-3;

pub struct RegionMap {
    /// `[1, C, D, H, W]`: `Σ_{a∈A'} M_a / ΣM_a` over the voxels `A'` of the region kept.
    pub relevance: Tensor<5>,
    /// `ΣM_a = y_a (Lᵀ1)_a` for every voxel of the region (0 elsewhere), `[1, 1, D, H, W]`.
    pub totals: Tensor<5>,
    /// 1 where a region voxel was kept, `[1, 1, D, H, W]`.
    pub kept: Tensor<5>,
}

/// How many voxels the per-voxel oracle explains per batched pass.
pub const NAIVE_BATCH: usize = 8;

/// `(Lᵀ1)` for every logit on the plan's output window (exact inside its box): the sum of the
/// input relevance per unit of start relevance.
pub fn column_sums(plan: &Plan, pass: &Pass) -> Tensor<5> {
    transpose(plan, pass.value(0, &plan.input_window()).ones_like())
}

/// The region `[1, 1, …]` (1 inside) as a selection of `class` among `classes`: `[1, K, …]`,
/// 1 at the class a voxel is explained for. A selection may pick a different class per voxel
/// (each voxel's own predicted class: all of a multi-class model's foreground at once).
pub fn selection(class: usize, region: Tensor<5>, classes: usize) -> Tensor<5> {
    let inside = region.greater_elem(0.5).float();
    Tensor::cat((0..classes).map(|c| if c == class { inside.clone() } else { inside.zeros_like() }).collect(), 1)
}

/// The logit (or any per-class value `t`, `[1, K, …]`) each voxel of `selection` is explained
/// for, `[1, 1, …]` (0 outside the region).
pub fn selected(t: Tensor<5>, selection: &Tensor<5>) -> Tensor<5> {
    (t * selection.clone()).sum_dim(1)
}

/// The region map over `selection` (`[1, K, …]` on the plan's output window: 1 at the class each
/// region voxel is explained for, [`selection`]) with the [`column_sums`] of this plan;
/// `largest` is the left-out rule's largest `|ΣM_b|` over the whole region when the region is
/// explained in parts (else this part's). Since `L` is linear in its start, voxels of different
/// classes share the two passes: `M_A = L(Σ_a e_{a,c(a)} / (Lᵀ1)_{a,c(a)})`. The map is on
/// [`Plan::input_window`], `totals` and `kept` on the output window.
pub fn region_map_planned(
    graph: &Graph,
    pass: &Pass,
    plan: &Plan,
    selection: Tensor<5>,
    column_sums: Tensor<5>,
    largest: Option<f32>,
) -> RegionMap {
    let logits = pass.value(graph.output, &plan.output_window());
    let lt1 = selected(column_sums, &selection);
    let totals = selected(logits, &selection) * lt1.clone();
    let inside = selection.clone().sum_dim(1).greater_elem(0.5).float();
    let largest = match largest {
        Some(l) => inside.zeros_like().narrow(2, 0, 1).narrow(3, 0, 1).narrow(4, 0, 1).add_scalar(l),
        None => (totals.clone().abs() * inside.clone()).max().reshape([1, 1, 1, 1, 1]),
    };
    let kept = totals.clone().abs().greater_equal(largest * LEFT_OUT_FRACTION).float() * inside;
    // e_a / (Lᵀ1)_a where kept; the divisor is made 1 elsewhere so that nothing is NaN.
    let safe = lt1 * kept.clone() + (kept.ones_like() - kept.clone());
    let start = selection * (kept.clone() / safe);
    RegionMap { relevance: propagate(plan, start), totals, kept }
}

/// The exact two-pass region map of `class` over `region` (`[1, 1, D, H, W]` on the whole grid,
/// 1 inside), each node on its nested window around `bounds`, the region's bounding box (tensor
/// axes); returned on the whole grid.
pub fn region_map(
    graph: &Graph,
    trace: &Trace,
    composite: &Composite,
    class: usize,
    region: Tensor<5>,
    bounds: ([usize; 3], [usize; 3]),
) -> RegionMap {
    let full = grid(trace);
    let pass = Pass::whole(trace);
    let plan = Plan::around(graph, trace, composite, bounds.0, bounds.1);
    let sums = column_sums(&plan, &pass);
    let (out, input) = (plan.output_window(), plan.input_window());
    let classes = graph.classes;
    let m = region_map_planned(
        graph,
        &pass,
        &plan,
        selection(class, crop_tensor(&region, &out, full), classes),
        sums,
        None,
    );
    let all = whole(full);
    RegionMap {
        relevance: refit(m.relevance, &input, &all),
        totals: refit(m.totals, &out, &all),
        kept: refit(m.kept, &out, &all),
    }
}

/// The paper's method, one LRP pass per voxel (batched, [`NAIVE_BATCH`] voxels a pass), on the
/// whole grid: `Σ_{a∈A'} M_a / ΣM_a` with the same left-out rule. `voxels` are `[d, h, w]`.
/// Returns the map and how many voxels were left out.
pub fn naive_region(
    graph: &Graph,
    trace: &Trace,
    composite: &Composite,
    class: usize,
    voxels: &[[usize; 3]],
) -> (Tensor<5>, usize) {
    let plan = Plan::new(graph, trace, composite);
    let logits = trace.value(graph.output);
    let mut maps: Vec<(Tensor<5>, f32)> = Vec::new();
    for chunk in voxels.chunks(NAIVE_BATCH) {
        let starts: Vec<Tensor<5>> = chunk.iter().map(|v| start_for(logits, class, *v, Target::Logit)).collect();
        let batch = propagate(&plan, Tensor::cat(starts, 0));
        let per = batch.dims().iter().skip(1).product::<usize>();
        // Summed on the host in f64: the oracle should not add float32 rounding of its own.
        let host = batch.clone().into_data().try_into_vec::<f32>().expect("f32");
        for i in 0..chunk.len() {
            let total = host[i * per..(i + 1) * per].iter().map(|v| *v as f64).sum::<f64>() as f32;
            maps.push((batch.clone().narrow(0, i, 1), total));
        }
    }
    let largest = maps.iter().fold(0f32, |m, (_, t)| m.max(t.abs()));
    let mut sum = trace.input().zeros_like();
    let mut left_out = 0;
    for (m, total) in maps {
        if total.abs() >= largest * LEFT_OUT_FRACTION {
            sum = sum + m / total;
        } else {
            left_out += 1;
        }
    }
    (sum, left_out)
}
