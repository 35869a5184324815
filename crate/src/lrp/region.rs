//! Relevance maps for a region of output voxels, exactly, in two passes.
//!
//! The region map of Chlebus et al. 2019 normalises each voxel's map before summing:
//! `M_A = Σ_{a∈A} M_a / ΣM_a`, where `M_a = L(y_a e_a)` is the input relevance when LRP starts
//! from the logit `y_a` at voxel `a` alone, and `ΣM_a` its sum over the input. For a fixed
//! forward pass every rule is linear in the relevance it starts from (`L` is a matrix), so
//! `ΣM_a = 1ᵀ L y_a e_a = y_a (Lᵀ1)_a` and `M_A = L(Σ_{a∈A} e_a / (Lᵀ1)_a)`:
//! one pass of `Lᵀ` and one LRP pass, whatever the size of `A`. Both passes share the rules
//! made for this forward pass ([`Plan`]): `Lᵀ` is each layer's transpose
//! ([`super::rules::PreparedRule::transpose`]), walked from the input to the logits.
//! [`naive_region`] does the paper's per-voxel loop (batched); it is the test oracle.
//!
//! Voxels whose `|ΣM_a|` is below [`LEFT_OUT_FRACTION`] of the largest in the region are left
//! out (their normalised map would be noise divided by almost nothing) and counted.

use burn::prelude::*;

use super::composite::Composite;
use super::unet::{propagate, propagate_planned, start_relevance, transpose_planned, Plan};
use crate::model::unet::{Activations, UNet};

/// A voxel `a` of the region is left out when `|ΣM_a| < LEFT_OUT_FRACTION · max_{b∈A} |ΣM_b|`.
pub const LEFT_OUT_FRACTION: f32 = 1e-3;

pub struct RegionMap {
    /// `[1, C, D, H, W]`: `Σ_{a∈A'} M_a / ΣM_a` over the voxels `A'` of the region kept.
    pub relevance: Tensor<5>,
    /// `ΣM_a = y_a (Lᵀ1)_a` for every output voxel of the class, `[1, 1, D, H, W]`.
    pub totals: Tensor<5>,
    /// 1 where a region voxel was kept, `[1, 1, D, H, W]`.
    pub kept: Tensor<5>,
}

/// `(Lᵀ1)` for every logit: the sum of the input relevance per unit of start relevance.
pub fn column_sums(net: &UNet, act: &Activations, plan: &Plan) -> Tensor<5> {
    transpose_planned(net, act, plan, act.x.ones_like())
}

/// The exact region map for `class` over `region` (`[1, 1, D, H, W]`, 1 inside, 0 outside).
pub fn region_map(net: &UNet, act: &Activations, composite: &Composite, class: usize, region: Tensor<5>) -> RegionMap {
    let plan = Plan::new(net, act, composite);
    let sums = column_sums(net, act, &plan);
    let totals = act.logits.clone().narrow(1, class, 1) * sums.clone().narrow(1, class, 1);
    let inside = region.clone().greater_elem(0.5).float();
    let largest = (totals.abs() * inside).max().reshape([1, 1, 1, 1, 1]);
    map_with_largest(net, act, &plan, class, region, sums, largest)
}

/// The region map for the part of a region inside this pass's window, with the [`column_sums`]
/// of this forward pass and the left-out rule's `largest` `|ΣM_b|` of the whole region (a
/// region explained window by window).
pub fn region_map_largest(
    net: &UNet,
    act: &Activations,
    plan: &Plan,
    class: usize,
    region: Tensor<5>,
    column_sums: Tensor<5>,
    largest: f32,
) -> RegionMap {
    let largest = region.zeros_like().narrow(2, 0, 1).narrow(3, 0, 1).narrow(4, 0, 1).add_scalar(largest);
    map_with_largest(net, act, plan, class, region, column_sums, largest)
}

fn map_with_largest(
    net: &UNet,
    act: &Activations,
    plan: &Plan,
    class: usize,
    region: Tensor<5>,
    column_sums: Tensor<5>,
    largest: Tensor<5>,
) -> RegionMap {
    let lt1 = column_sums.narrow(1, class, 1);
    let y = act.logits.clone().narrow(1, class, 1);
    let totals = y * lt1.clone();
    let inside = region.greater_elem(0.5).float();
    let kept = totals.clone().abs().greater_equal(largest * LEFT_OUT_FRACTION).float() * inside;
    // e_a / (Lᵀ1)_a where kept; the divisor is made 1 elsewhere so that nothing is NaN.
    let safe = lt1.clone() * kept.clone() + (kept.ones_like() - kept.clone());
    let start_class = kept.clone() / safe;
    let classes = act.logits.dims()[1];
    let start = Tensor::cat(
        (0..classes).map(|c| if c == class { start_class.clone() } else { start_class.zeros_like() }).collect(),
        1,
    );
    RegionMap { relevance: propagate_planned(net, act, plan, start), totals, kept }
}

/// How many voxels the per-voxel oracle explains per batched pass.
pub const NAIVE_BATCH: usize = 8;

/// The paper's method, one LRP pass per voxel (batched, [`NAIVE_BATCH`] voxels a pass):
/// `Σ_{a∈A'} M_a / ΣM_a` with the same left-out rule. `voxels` are `[d, h, w]`. Returns the map
/// and how many voxels were left out.
pub fn naive_region(
    net: &UNet,
    act: &Activations,
    composite: &Composite,
    class: usize,
    voxels: &[[usize; 3]],
) -> (Tensor<5>, usize) {
    let mut maps: Vec<(Tensor<5>, f32)> = Vec::new();
    for chunk in voxels.chunks(NAIVE_BATCH) {
        let starts: Vec<Tensor<5>> = chunk.iter().map(|v| start_relevance(&act.logits, class, *v)).collect();
        let batch = propagate(net, act, composite, Tensor::cat(starts, 0));
        let b = chunk.len();
        let per = batch.dims().iter().skip(1).product::<usize>();
        // Summed on the host in f64: the oracle should not add float32 rounding of its own.
        let host = batch.clone().into_data().try_into_vec::<f32>().expect("f32");
        for i in 0..b {
            let total = host[i * per..(i + 1) * per].iter().map(|v| *v as f64).sum::<f64>() as f32;
            maps.push((batch.clone().narrow(0, i, 1), total));
        }
    }
    let largest = maps.iter().fold(0f32, |m, (_, t)| m.max(t.abs()));
    let mut sum = act.x.zeros_like();
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
