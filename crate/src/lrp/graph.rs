//! LRP through any [`Graph`]: the nodes walked from the logits back to the input, each passing
//! relevance to its inputs by its rule, and summing where a node's output was read twice (a
//! skip connection, a residual branch).
//!
//! Per node (Zennit's defaults, README "How relevance is computed"):
//! - convolutions and transposed convolutions, with a norm merged into them where one follows
//!   (`Graph::merges`): the composite's rule (`rules.rs`);
//! - ReLU, LeakyReLU, PReLU, dropout/identity and a norm that cannot be merged (a frozen
//!   per-channel affine, as in pre-activation blocks): `Pass`, relevance unchanged;
//! - max-pooling, up-sampling, concatenation and padding: the gradient (to each pooling
//!   window's winner, through interpolation's adjoint, split by channel, cropped);
//! - a residual sum and average pooling: Zennit's `Norm` rule (see [`norm_rule`]).
//!
//! Every step is linear in the relevance for a fixed forward pass, so each has a transpose, and
//! [`transpose`] walks them forwards: that gives region maps their column sums `Lᵀ1`
//! (`region.rs`). A pass around a box of logits runs on nested windows of the trace
//! (`Plan::around`): each node on the box widened by the receptive field between it and the
//! logits and one step of the coarsest resolution, aligned to it, so that every node's relevance
//! is zero wherever the crop changed what the node computes (the argument of `crop.rs`, for any
//! graph).

use burn::prelude::*;

use super::composite::Composite;
use super::region::{RegionMap, LEFT_OUT_FRACTION};
use super::rules::{split_channels, stabilise, Input, Linear, PreparedRule, DEFAULT_EPSILON};
use super::unet::{start_for, Explanation, Target};
use crate::crop::{crop_tensor, refit, whole, Window};
use crate::model::graph::{pad, unpad, Graph, Op, Trace};
use crate::pool::{avg_pool3d, avg_pool3d_adjoint, max_gather3d, max_unpool3d};
use crate::upsample::{upsample2, upsample2_adjoint, Mode};

/// Zennit's `Norm` rule for a node that sums (or averages) its inputs without weights of its
/// own, a residual `z = Σ_k z_k` or an average pool `z = P x`:
///
/// `R_k = z_k · R / stab(z)` (sum), `R_in = x ⊙ Pᵀ(R / stab(z))` (average pool),
///
/// relevance split over the summands in proportion to their contributions, with
/// `stab(z) = z + ε·sgn₀(z)`, ε = 1e-6 (Zennit's `Norm`, the `Sum` of its ResNet canonizer).
/// Returns the factor `1 / stab(z)`.
pub fn norm_rule(z: &Tensor<5>) -> Tensor<5> {
    stabilise(z.clone(), DEFAULT_EPSILON).recip()
}

/// How one node passes relevance to its inputs, for one forward pass and composite.
#[derive(Clone, Debug)]
enum Step {
    /// Reached by no relevance (a conv merged into the norm after it).
    Unreached,
    Rule(PreparedRule),
    Pass,
    /// Max-pooling's gradient; the pooled input and the window.
    Unpool(Tensor<5>, [usize; 3]),
    /// The Norm rule through an average pool: the pool's input and `1 / stab(z)`.
    AvgPool {
        x: Tensor<5>,
        inverse: Tensor<5>,
        window: [usize; 3],
    },
    Upsample(Mode),
    /// Channels per input.
    Concat(Vec<usize>),
    /// The Norm rule through a sum: each input's share `z_k / stab(z)`.
    Add(Vec<Tensor<5>>),
    Pad {
        before: [usize; 3],
        after: [usize; 3],
    },
}

/// The rules of a composite made for every node of one forward pass: what several passes
/// through one forward pass share. Each node's step runs on its own window of the input grid
/// ([`Plan::around`]): the nodes near the logits on little more than the box explained, those
/// near the input on the whole receptive field.
#[derive(Clone, Debug)]
pub struct Plan {
    steps: Vec<Step>,
    /// Where each step sends relevance: the node's inputs (a merged norm's: its conv's input).
    targets: Vec<Vec<usize>>,
    /// The window each step's tensors live on (node 0's: where the input relevance lands).
    windows: Vec<Window>,
    output: usize,
    full: [usize; 3],
}

/// Whether each node's output is known to be ≥ 0 (a ReLU's, and what only pools, samples or
/// joins such outputs), so that rules skip their `x⁻` terms.
fn non_negative(graph: &Graph) -> Vec<bool> {
    let mut out: Vec<bool> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let all = node.inputs.iter().all(|&i| out[i]);
        out.push(match node.op {
            Op::Relu => true,
            Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::Upsample(_)
            | Op::Pad { .. }
            | Op::Identity
            | Op::Concat
            | Op::Add => all,
            _ => false,
        });
    }
    out
}

impl Plan {
    /// Every node on the whole grid: any relevance of the logits may be propagated.
    pub fn new(graph: &Graph, trace: &Trace, composite: &Composite) -> Plan {
        let full = grid(trace);
        Plan::on(graph, trace, composite, vec![whole(full); graph.nodes.len()])
    }

    /// Every node on its nested window around the box `[first, last]` (tensor axes) of the
    /// logits: relevance propagated with this plan must be zero outside that box, and column
    /// sums are exact only inside it.
    pub fn around(graph: &Graph, trace: &Trace, composite: &Composite, first: [usize; 3], last: [usize; 3]) -> Plan {
        let full = grid(trace);
        Plan::on(graph, trace, composite, nested_windows(graph, first, last, full))
    }

    fn on(graph: &Graph, trace: &Trace, composite: &Composite, windows: Vec<Window>) -> Plan {
        let full = grid(trace);
        let merges = graph.merges();
        let nonneg = non_negative(graph);
        let merged_convs: Vec<usize> = merges.iter().flatten().copied().collect();
        let first = graph.first_layers();
        let mut steps = Vec::with_capacity(graph.nodes.len());
        let mut targets = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            let mut to = node.inputs.clone();
            let w = &windows[i];
            let value = |j: usize| {
                let t = trace.value(j);
                if *w == whole(full) {
                    t.clone()
                } else {
                    crop_tensor(t, w, full)
                }
            };
            let rule_for = |conv: usize, linear: Linear, x: usize| {
                let name = &graph.nodes[conv].name;
                let rule = composite.rule_at(name, first.contains(&conv));
                let input = if nonneg[x] { Input::NonNegative } else { Input::Signed };
                Step::Rule(PreparedRule::with_output(&rule, &linear, value(x), input, Some(value(i))))
            };
            let step = match &node.op {
                Op::Input => Step::Unreached,
                Op::Conv(_) if merged_convs.contains(&i) => Step::Unreached,
                Op::Conv(c) => rule_for(i, Linear::from_spec(c), node.inputs[0]),
                Op::Norm(_) => match (merges[i], &trace.merged[i]) {
                    (Some(c), Some(spec)) => {
                        let x = graph.nodes[c].inputs[0];
                        to = vec![x];
                        rule_for(c, Linear::from_spec(spec), x)
                    }
                    _ => Step::Pass,
                },
                Op::Relu | Op::LeakyRelu(_) | Op::PRelu(_) | Op::Identity => Step::Pass,
                Op::MaxPool(f) => Step::Unpool(value(node.inputs[0]), *f),
                Op::AvgPool(f) => Step::AvgPool { x: value(node.inputs[0]), inverse: norm_rule(&value(i)), window: *f },
                Op::Upsample(mode) => Step::Upsample(*mode),
                Op::Concat => Step::Concat(node.inputs.iter().map(|&j| trace.value(j).dims()[1]).collect()),
                Op::Add => {
                    let inverse = norm_rule(&value(i));
                    Step::Add(node.inputs.iter().map(|&j| value(j) * inverse.clone()).collect())
                }
                Op::Pad { before, after } => Step::Pad { before: *before, after: *after },
            };
            steps.push(step);
            targets.push(to);
        }
        Plan { steps, targets, windows, output: graph.output, full }
    }

    /// The window the logits' relevance must be given on ([`propagate`]) and on which
    /// [`transpose`] returns its result.
    pub fn output_window(&self) -> Window {
        self.windows[self.output]
    }

    /// The window on which [`propagate`] returns the input's relevance (and [`transpose`]
    /// takes its argument).
    pub fn input_window(&self) -> Window {
        self.windows[0]
    }

    /// The input grid the plan's windows are on.
    pub fn grid(&self) -> [usize; 3] {
        self.full
    }
}

/// Each node's window for a pass from the logits in the box `[first, last]`: the box widened by
/// the receptive field between the node's input and the logits (the longest path of
/// [`Graph::reaches`], the node's own included) and one step of the coarsest resolution, aligned
/// to it. A node's relevance is zero within its own reach of its window's border, where the crop
/// changed what the node computes: the windows give the whole grid's maps. Padding nodes move
/// the grid, so a graph with them runs on the whole grid.
fn nested_windows(graph: &Graph, first: [usize; 3], last: [usize; 3], full: [usize; 3]) -> Vec<Window> {
    let n = graph.nodes.len();
    if graph
        .nodes
        .iter()
        .any(|node| matches!(node.op, Op::Pad { before, after } if before != [0; 3] || after != [0; 3]))
    {
        return vec![whole(full); n];
    }
    let (a, reaches) = (graph.align(), graph.reaches());
    // dist[i]: the reach between node i's output and the logits.
    let mut dist = vec![[0usize; 3]; n];
    for i in (0..n).rev() {
        for &j in &graph.nodes[i].inputs {
            dist[j] = std::array::from_fn(|k| dist[j][k].max(dist[i][k] + reaches[i][k]));
        }
    }
    let merges = graph.merges();
    (0..n)
        .map(|i| {
            // A merged norm's step is its conv's.
            let own = merges[i].map_or(reaches[i], |c| reaches[c]);
            let m: [usize; 3] = std::array::from_fn(|k| dist[i][k] + own[k] + a[k]);
            Window {
                lo: std::array::from_fn(|k| first[k].saturating_sub(m[k]) / a[k] * a[k]),
                hi: std::array::from_fn(|k| ((last[k] + 1 + m[k]).div_ceil(a[k]) * a[k]).min(full[k])),
            }
        })
        .collect()
}

fn add(slot: &mut Option<Tensor<5>>, r: Tensor<5>) {
    *slot = Some(match slot.take() {
        Some(s) => s + r,
        None => r,
    });
}

/// Relevance of the input (on [`Plan::input_window`]) for relevance `r` of the logits (on
/// [`Plan::output_window`], zero outside the plan's box; `r` may be a batch of several
/// relevances for the one forward pass).
pub fn propagate(plan: &Plan, r: Tensor<5>) -> Tensor<5> {
    let n = plan.steps.len();
    let mut rel: Vec<Option<Tensor<5>>> = vec![None; n];
    rel[plan.output] = Some(r);
    for i in (1..n).rev() {
        let Some(r) = rel[i].take() else { continue };
        let to = &plan.targets[i];
        let out: Vec<Tensor<5>> = match &plan.steps[i] {
            Step::Unreached => unreachable!("relevance reached a node merged into another"),
            Step::Rule(rule) => vec![rule.apply(r)],
            Step::Pass => vec![r],
            Step::Unpool(x, f) => vec![max_unpool3d(x.clone(), r, *f)],
            Step::AvgPool { x, inverse, window } => {
                vec![x.clone() * avg_pool3d_adjoint(r * inverse.clone(), *window)]
            }
            Step::Upsample(mode) => vec![upsample2_adjoint(r, *mode)],
            Step::Concat(sizes) => split_channels(r, sizes),
            Step::Add(shares) => shares.iter().map(|s| r.clone() * s.clone()).collect(),
            Step::Pad { before, after } => vec![unpad(r, *before, *after)],
        };
        for (&j, r) in to.iter().zip(out) {
            let r = refit(r, &plan.windows[i], &plan.windows[j]);
            add(&mut rel[j], r);
        }
    }
    rel[0].take().expect("relevance reaches the input")
}

/// [`propagate`] from and to the whole grid.
pub fn propagate_whole(plan: &Plan, r: Tensor<5>) -> Tensor<5> {
    let all = whole(plan.full);
    refit(propagate(plan, refit(r, &all, &plan.output_window())), &plan.input_window(), &all)
}

/// `Lᵀ v` for the map `L` of [`propagate`]: `v` shaped like the input (on
/// [`Plan::input_window`]), the result like the logits (on [`Plan::output_window`], exact
/// inside the plan's box); each step replaced by its transpose, walked from the input forwards.
pub fn transpose(plan: &Plan, v: Tensor<5>) -> Tensor<5> {
    let n = plan.steps.len();
    let mut vals: Vec<Option<Tensor<5>>> = vec![None; n];
    vals[0] = Some(v);
    // How many later steps read each node (a merged norm reads its conv's input).
    let reached = |i: &usize| !matches!(plan.steps[*i], Step::Unreached);
    let mut left = vec![0usize; n];
    for i in (1..n).filter(reached) {
        for &j in &plan.targets[i] {
            left[j] += 1;
        }
    }
    for i in (1..n).filter(reached) {
        let to = &plan.targets[i];
        let get = |j: usize| refit(vals[j].clone().expect("computed before"), &plan.windows[j], &plan.windows[i]);
        let out = match &plan.steps[i] {
            Step::Unreached => None,
            Step::Rule(rule) => Some(rule.transpose(get(to[0]))),
            Step::Pass => Some(get(to[0])),
            Step::Unpool(x, f) => Some(max_gather3d(x.clone(), get(to[0]), *f)),
            Step::AvgPool { x, inverse, window } => Some(avg_pool3d(x.clone() * get(to[0]), *window) * inverse.clone()),
            Step::Upsample(mode) => Some(upsample2(get(to[0]), *mode)),
            Step::Concat(_) => Some(Tensor::cat(to.iter().map(|&j| get(j)).collect(), 1)),
            Step::Add(shares) => to.iter().zip(shares).map(|(&j, s)| get(j) * s.clone()).reduce(|a, b| a + b),
            Step::Pad { before, after } => Some(pad(get(to[0]), *before, *after)),
        };
        vals[i] = out;
        // Free what no later step reads.
        for &j in to {
            left[j] -= 1;
            if left[j] == 0 && j != plan.output {
                vals[j] = None;
            }
        }
    }
    vals[plan.output].take().expect("the logits are reached")
}

/// The input grid `[d, h, w]` of a trace.
pub fn grid(trace: &Trace) -> [usize; 3] {
    let [_, _, d, h, w] = trace.input().dims();
    [d, h, w]
}

/// `t` (on the whole grid `full`) cropped to `w`.
fn on(t: &Tensor<5>, w: &Window, full: [usize; 3]) -> Tensor<5> {
    if *w == whole(full) {
        t.clone()
    } else {
        crop_tensor(t, w, full)
    }
}

/// The relevance map for `target` of `class` at `voxel = [d, h, w]`, each node on its nested
/// window around the voxel, returned on the whole grid.
pub fn explain_target(
    graph: &Graph,
    trace: &Trace,
    composite: &Composite,
    class: usize,
    voxel: [usize; 3],
    target: Target,
) -> Explanation {
    let r = start_for(trace.value(graph.output), class, voxel, target);
    let logit = r.clone().sum();
    let plan = Plan::around(graph, trace, composite, voxel, voxel);
    Explanation { relevance: propagate_whole(&plan, r), logit }
}

/// [`explain_target`] for the logit of `class`.
pub fn explain_voxel(
    graph: &Graph,
    trace: &Trace,
    composite: &Composite,
    class: usize,
    voxel: [usize; 3],
) -> Explanation {
    explain_target(graph, trace, composite, class, voxel, Target::Logit)
}

/// `(Lᵀ1)` for every logit on the plan's output window (exact inside its box): the sum of the
/// input relevance per unit of start relevance.
pub fn column_sums(plan: &Plan, trace: &Trace) -> Tensor<5> {
    transpose(plan, on(trace.input(), &plan.input_window(), plan.full).ones_like())
}

/// The region map of `class` over `region` (`[1, 1, …]` on the plan's output window, 1 inside)
/// with the [`column_sums`] of this plan; `largest` is the left-out rule's largest `|ΣM_b|` over
/// the whole region when the region is explained in parts (else this part's). The map is on
/// [`Plan::input_window`], `totals` and `kept` on the output window.
pub fn region_map_planned(
    graph: &Graph,
    trace: &Trace,
    plan: &Plan,
    class: usize,
    region: Tensor<5>,
    column_sums: Tensor<5>,
    largest: Option<f32>,
) -> RegionMap {
    let logits = on(trace.value(graph.output), &plan.output_window(), plan.full);
    let lt1 = column_sums.narrow(1, class, 1);
    let totals = logits.clone().narrow(1, class, 1) * lt1.clone();
    let inside = region.greater_elem(0.5).float();
    let largest = match largest {
        Some(l) => inside.zeros_like().narrow(2, 0, 1).narrow(3, 0, 1).narrow(4, 0, 1).add_scalar(l),
        None => (totals.clone().abs() * inside.clone()).max().reshape([1, 1, 1, 1, 1]),
    };
    let kept = totals.clone().abs().greater_equal(largest * LEFT_OUT_FRACTION).float() * inside;
    // e_a / (Lᵀ1)_a where kept; the divisor is made 1 elsewhere so that nothing is NaN.
    let safe = lt1 * kept.clone() + (kept.ones_like() - kept.clone());
    let start_class = kept.clone() / safe;
    let classes = logits.dims()[1];
    let start = Tensor::cat(
        (0..classes).map(|c| if c == class { start_class.clone() } else { start_class.zeros_like() }).collect(),
        1,
    );
    RegionMap { relevance: propagate(plan, start), totals, kept }
}

/// The exact two-pass region map of `class` over `region` (`[1, 1, D, H, W]` on the whole grid,
/// 1 inside), each node on its nested window around `bounds`, the region's bounding box (tensor
/// axes); returned on the whole grid (`lrp/region.rs` for the method).
pub fn region_map(
    graph: &Graph,
    trace: &Trace,
    composite: &Composite,
    class: usize,
    region: Tensor<5>,
    bounds: ([usize; 3], [usize; 3]),
) -> RegionMap {
    let full = grid(trace);
    let plan = Plan::around(graph, trace, composite, bounds.0, bounds.1);
    let sums = column_sums(&plan, trace);
    let (out, input) = (plan.output_window(), plan.input_window());
    let m = region_map_planned(graph, trace, &plan, class, on(&region, &out, full), sums, None);
    let all = whole(full);
    RegionMap {
        relevance: refit(m.relevance, &input, &all),
        totals: refit(m.totals, &out, &all),
        kept: refit(m.kept, &out, &all),
    }
}

/// The per-voxel oracle of `region.rs` ([`super::region::naive_region`]) on a graph, on the
/// whole grid: one LRP pass per voxel (batched), each map divided by its sum.
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
    for chunk in voxels.chunks(super::region::NAIVE_BATCH) {
        let starts: Vec<Tensor<5>> = chunk.iter().map(|v| start_for(logits, class, *v, Target::Logit)).collect();
        let batch = propagate(&plan, Tensor::cat(starts, 0));
        let per = batch.dims().iter().skip(1).product::<usize>();
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
