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
//! With [`Composite::Gradient`] the same walk is the plain gradient: convolutions send `Wᵀ R`,
//! activations gate by their derivative at the forward pass, a norm that cannot be merged
//! scales by its factor, sums copy and average pools spread (the gradient-based methods of
//! `faithfulness::methods`).
//!
//! Every step is linear in the relevance for a fixed forward pass, so each has a transpose, and
//! [`transpose`] walks them forwards: that gives region maps their column sums `Lᵀ1`
//! (`region_map.rs`). A pass around a box of logits runs on nested windows of the trace
//! (`Plan::around`): each node on the box widened by the receptive field between it and the
//! logits and one step of the coarsest resolution, aligned to it, so that every node's relevance
//! is zero wherever the crop changed what the node computes (the argument of `crop.rs`, for any
//! graph).

use burn::prelude::*;

use super::composite::Composite;
use super::rules::{split_channels, stabilise, Input, Linear, PreparedRule, DEFAULT_EPSILON};
use super::target::{start_for, Explanation, Target};
use crate::model::graph::{merge, pad, unpad, ConvSpec, Graph, Op, Trace};
use crate::ops::pool::{avg_pool3d, avg_pool3d_adjoint, max_gather3d, max_unpool3d};
use crate::ops::upsample::{upsample2, upsample2_adjoint, Mode};
use crate::spatial::crop::{refit, whole, Window};

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
    /// The gradient through an element-wise map: `R ⊙ f'(x)` (activations; a norm's factor).
    Scale(Tensor<5>),
    /// The gradient through a sum: each input gets `R`.
    Copy(usize),
    /// The gradient through an average pool: `Pᵀ R`.
    Spread([usize; 3]),
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

/// A forward pass as the rules read it: each node's output on its own window of the grid
/// `full` (a whole-volume [`Trace`]: every window the whole grid; [`Pass::around`]: the nested
/// windows of one box, so that a large study's click holds no whole-grid activations beyond
/// those its receptive field spans).
#[derive(Clone, Debug)]
pub struct Pass {
    pub trace: Trace,
    pub windows: Vec<Window>,
    pub full: [usize; 3],
    /// Bytes of a layer's largest tensor a rule's step of [`propagate_once`] holds at once
    /// (larger windows run in slabs): [`SLAB_BYTES`] unless set.
    pub slab_bytes: usize,
}

impl Pass {
    /// A whole-volume trace.
    pub fn whole(trace: &Trace) -> Pass {
        let full = grid(trace);
        Pass { trace: trace.clone(), windows: vec![whole(full); trace.values.len()], full, slab_bytes: SLAB_BYTES }
    }

    /// The forward pass of `graph` on the nested windows `windows` of the grid `full`
    /// ([`nested_windows`]), each node computed on its window widened by its own reach, from its
    /// inputs on theirs, and cropped to its window; `input` gives the input on `windows[0]`.
    ///
    /// Why this is exact where LRP reads it: a node's relevance is zero outside the box widened
    /// by the reach between the node and the logits (`T_i`), and its rule reads its input on
    /// `T_i` widened by its own reach, which lies inside the input's `T_j`. A node whose inputs
    /// are exact on their `T_j` is therefore exact on its `T_i`; values outside an input's
    /// window are taken as zero, which changes the node only outside `T_i`. Norms must have
    /// fixed statistics (batch norm, or frozen by [`Graph::freeze`]): a window's own statistics
    /// would differ from the volume's.
    pub fn around(graph: &Graph, input: Tensor<5>, windows: Vec<Window>, full: [usize; 3]) -> Result<Pass, String> {
        if let Some(node) = graph.nodes.iter().find(|n| matches!(&n.op, Op::Norm(norm) if norm.per_volume())) {
            return Err(format!(
                "node \"{}\" normalises by the statistics of the whole volume: freeze them before a windowed pass",
                node.name
            ));
        }
        let n = graph.nodes.len();
        let (merges, reaches) = (graph.merges(), graph.reaches());
        let scales = graph.scales()?;
        let merged_convs: Vec<usize> = merges.iter().flatten().copied().collect();
        // Kept: what the rules read as a layer's input (and the logits). A node's own output,
        // which some rules divide by, is recomputed from its input when they need it: a click
        // on a large study then holds one tensor per layer instead of two.
        let mut keep = vec![false; n];
        keep[0] = true;
        keep[graph.output] = true;
        for i in 0..n {
            for j in step_reads(graph, &merges, &merged_convs, i).into_iter().filter(|&j| j != i) {
                keep[j] = true;
            }
        }
        let mut left = graph.consumers();
        let mut values: Vec<Option<Tensor<5>>> = vec![None; n];
        let mut merged: Vec<Option<ConvSpec>> = vec![None; n];
        values[0] = Some(input);
        for (i, node) in graph.nodes.iter().enumerate().skip(1) {
            if merged_convs.contains(&i) {
                continue;
            }
            // A merged norm is computed as its conv with the norm folded in, from the conv's input.
            let (spec, from, reach) = match (merges[i], &node.op) {
                (Some(c), Op::Norm(norm)) => {
                    let Op::Conv(conv) = &graph.nodes[c].op else { unreachable!("merges pairs a norm with a conv") };
                    let x = values[graph.nodes[c].inputs[0]].as_ref().expect("computed before");
                    // Fixed statistics: the tensor given for them is not read.
                    (Some(merge(conv, norm, x)), &graph.nodes[c].inputs, reaches[c])
                }
                _ => (None, &node.inputs, reaches[i]),
            };
            let w = windows[i];
            // Aligned to the node's and its inputs' resolutions, so that each crops evenly.
            let a: [usize; 3] =
                std::array::from_fn(|k| from.iter().map(|&j| scales[j][k]).fold(scales[i][k], usize::max));
            let e = Window {
                lo: std::array::from_fn(|k| w.lo[k].saturating_sub(reach[k]) / a[k] * a[k]),
                hi: std::array::from_fn(|k| ((w.hi[k] + reach[k]).div_ceil(a[k]) * a[k]).min(full[k])),
            };
            let inputs: Vec<Tensor<5>> =
                from.iter().map(|&j| refit(values[j].clone().expect("computed before"), &windows[j], &e)).collect();
            let out = match &spec {
                Some(spec) => spec.forward(inputs.into_iter().next().expect("one input")),
                None => graph.run(node, inputs),
            };
            values[i] = Some(refit(out, &e, &w));
            merged[i] = spec;
            for &j in from.iter().chain(&node.inputs) {
                left[j] = left[j].saturating_sub(1);
                if left[j] == 0 && !keep[j] {
                    values[j] = None;
                }
            }
        }
        Ok(Pass { trace: Trace { values, merged }, windows, full, slab_bytes: SLAB_BYTES })
    }

    /// Node `j`'s output on window `w` (zero where its own window does not reach).
    pub fn value(&self, j: usize, w: &Window) -> Tensor<5> {
        refit(self.trace.value(j).clone(), &self.windows[j], w)
    }

    /// The logits on their window.
    pub fn logits(&self, graph: &Graph) -> Tensor<5> {
        self.trace.value(graph.output).clone()
    }

    /// The window the logits lie on.
    pub fn output_window(&self, graph: &Graph) -> Window {
        self.windows[graph.output]
    }
}

/// The nodes whose outputs node `i`'s step reads: its own and its inputs' (a merged norm's:
/// its conv's input); none for steps that read no values. `merges` and `merged_convs` are
/// [`Graph::merges`] and the convs it names.
fn step_reads(graph: &Graph, merges: &[Option<usize>], merged_convs: &[usize], i: usize) -> Vec<usize> {
    let node = &graph.nodes[i];
    match &node.op {
        Op::Conv(_) if !merged_convs.contains(&i) => vec![i, node.inputs[0]],
        Op::Norm(_) => match merges[i] {
            Some(c) => vec![i, graph.nodes[c].inputs[0]],
            None => vec![node.inputs[0]],
        },
        Op::MaxPool(_) => vec![node.inputs[0]],
        // The gradient's gates (LRP passes activations on without reading them).
        Op::Relu | Op::LeakyRelu(_) | Op::PRelu(_) => vec![node.inputs[0]],
        Op::AvgPool(_) => vec![i, node.inputs[0]],
        Op::Add => node.inputs.iter().copied().chain([i]).collect(),
        _ => vec![],
    }
}

/// Bytes per slab of the largest tensor a rule's step holds in [`propagate_once`].
pub const SLAB_BYTES: usize = 32 << 20;

/// What making a node's step needs besides the forward pass: the composite and the graph's
/// structure, computed once.
struct Steps<'a> {
    graph: &'a Graph,
    composite: &'a Composite,
    merges: Vec<Option<usize>>,
    merged_convs: Vec<usize>,
    nonneg: Vec<bool>,
    first: Vec<usize>,
    channels: Vec<usize>,
    scales: Vec<[usize; 3]>,
    reaches: Vec<[usize; 3]>,
}

impl<'a> Steps<'a> {
    fn new(graph: &'a Graph, composite: &'a Composite) -> Steps<'a> {
        let merges = graph.merges();
        let merged_convs = merges.iter().flatten().copied().collect();
        let channels = graph.validate().expect("a validated graph");
        Steps {
            graph,
            composite,
            merges,
            merged_convs,
            nonneg: non_negative(graph),
            first: graph.first_layers(),
            channels,
            scales: graph.scales().expect("a validated graph"),
            reaches: graph.reaches(),
        }
    }

    fn reads(&self, i: usize) -> Vec<usize> {
        step_reads(self.graph, &self.merges, &self.merged_convs, i)
    }

    /// Node `i`'s window `w` cut along d into slabs, each as its core (the slabs' cores tile
    /// `w`) and the core widened by the kernel's reach within `w`: a rule's step on a large
    /// window runs slab by slab, so that its divisors and temporaries are held for one slab at
    /// a time. Other steps, and rules on small windows, are one slab.
    fn slabs(&self, i: usize, w: &Window, bytes: usize) -> Vec<(Window, Window)> {
        let at = self.merges[i].unwrap_or(i);
        let node = &self.graph.nodes[at];
        if !matches!(node.op, Op::Conv(_)) || self.merged_convs.contains(&i) {
            return vec![(*w, *w)];
        }
        let tensors = [i, node.inputs[0]];
        let align = tensors.iter().map(|&j| self.scales[j][0]).max().unwrap_or(1);
        let plane = |j: usize| {
            let s = self.scales[j];
            self.channels[j] * (w.dims()[1] / s[1]) * (w.dims()[2] / s[2]) * 4 / s[0]
        };
        let per_plane = tensors.iter().map(|&j| plane(j)).max().unwrap_or(1).max(1);
        let planes = (bytes / per_plane / align).max(1) * align;
        if planes >= w.dims()[0] {
            return vec![(*w, *w)];
        }
        let reach = self.reaches[at][0].div_ceil(align) * align;
        (w.lo[0]..w.hi[0])
            .step_by(planes)
            .map(|lo| {
                let hi = (lo + planes).min(w.hi[0]);
                let core = Window { lo: [lo, w.lo[1], w.lo[2]], hi: [hi, w.hi[1], w.hi[2]] };
                let wide = Window {
                    lo: [lo.saturating_sub(reach).max(w.lo[0]), w.lo[1], w.lo[2]],
                    hi: [(hi + reach).min(w.hi[0]), w.hi[1], w.hi[2]],
                };
                (core, wide)
            })
            .collect()
    }

    /// Node `i`'s step on window `w` of `pass`, and the nodes it sends relevance to.
    fn step(&self, pass: &Pass, i: usize, w: &Window) -> (Step, Vec<usize>) {
        let graph = self.graph;
        let node = &graph.nodes[i];
        let mut to = node.inputs.clone();
        let value = |j: usize| pass.value(j, w);
        // The node's own output where the pass kept it ([`Pass::around`] keeps inputs only).
        let own = pass.trace.values[i].is_some().then(|| value(i));
        let rule_for = |conv: usize, linear: Linear, x: usize| {
            let name = &graph.nodes[conv].name;
            let rule = self.composite.rule_at(name, self.first.contains(&conv));
            let input = if self.nonneg[x] { Input::NonNegative } else { Input::Signed };
            Step::Rule(PreparedRule::with_output(&rule, &linear, value(x), input, own.clone()))
        };
        if matches!(self.composite, Composite::Gradient) {
            if let Some(step) = self.gradient_step(pass, i, w) {
                return (step, to);
            }
        }
        let step = match &node.op {
            Op::Input => Step::Unreached,
            Op::Conv(_) if self.merged_convs.contains(&i) => Step::Unreached,
            Op::Conv(c) => rule_for(i, Linear::from_spec(c), node.inputs[0]),
            Op::Norm(_) => match (self.merges[i], &pass.trace.merged[i]) {
                (Some(c), Some(spec)) => {
                    let x = graph.nodes[c].inputs[0];
                    to = vec![x];
                    rule_for(c, Linear::from_spec(spec), x)
                }
                _ => Step::Pass,
            },
            Op::Relu | Op::LeakyRelu(_) | Op::PRelu(_) | Op::Identity => Step::Pass,
            Op::MaxPool(f) => Step::Unpool(value(node.inputs[0]), *f),
            Op::AvgPool(f) => {
                let x = value(node.inputs[0]);
                let z = own.clone().unwrap_or_else(|| avg_pool3d(x.clone(), *f));
                Step::AvgPool { x, inverse: norm_rule(&z), window: *f }
            }
            Op::Upsample(mode) => Step::Upsample(*mode),
            Op::Concat => Step::Concat(node.inputs.iter().map(|&j| self.channels[j]).collect()),
            Op::Add => {
                let z = own.clone().unwrap_or_else(|| {
                    node.inputs.iter().map(|&j| value(j)).reduce(|a, b| a + b).expect("a sum has inputs")
                });
                let inverse = norm_rule(&z);
                Step::Add(node.inputs.iter().map(|&j| value(j) * inverse.clone()).collect())
            }
            Op::Pad { before, after } => Step::Pad { before: *before, after: *after },
        };
        (step, to)
    }
}

impl Steps<'_> {
    /// Node `i`'s step for the plain gradient where it differs from LRP's (activations, norms
    /// left unmerged, sums, average pools); `None` where the two agree (convolutions through
    /// [`Rule::Gradient`](super::Rule::Gradient), max-pooling, up-sampling, joins, padding).
    fn gradient_step(&self, pass: &Pass, i: usize, w: &Window) -> Option<Step> {
        let node = &self.graph.nodes[i];
        let x = || pass.value(node.inputs[0], w);
        let gate = |x: Tensor<5>| x.greater_elem(0.0).float();
        let per_channel = |t: Tensor<1>, c: usize| if t.dims()[0] == 1 { t.expand([c]) } else { t };
        Some(match &node.op {
            Op::Relu => Step::Scale(gate(x())),
            Op::LeakyRelu(slope) => Step::Scale(gate(x()) * (1.0 - slope) + *slope),
            Op::PRelu(a) => {
                let g = gate(x());
                let c = g.dims()[1];
                let a = per_channel(a.clone(), c).reshape([1, c, 1, 1, 1]);
                Step::Scale(g.clone() + (g.ones_like() - g) * a)
            }
            Op::Norm(norm) if self.merges[i].is_none() => {
                let (scale, _) = norm.affine(&x());
                let c = scale.dims()[0];
                Step::Scale(scale.reshape([1, c, 1, 1, 1]))
            }
            Op::Add => Step::Copy(node.inputs.len()),
            Op::AvgPool(f) => Step::Spread(*f),
            _ => return None,
        })
    }
}

impl Plan {
    /// Every node on the whole grid: any relevance of the logits may be propagated.
    pub fn new(graph: &Graph, trace: &Trace, composite: &Composite) -> Plan {
        let pass = Pass::whole(trace);
        let windows = pass.windows.clone();
        Plan::on(graph, &pass, composite, windows)
    }

    /// Every node on its nested window around the box `[first, last]` (tensor axes) of the
    /// logits: relevance propagated with this plan must be zero outside that box, and column
    /// sums are exact only inside it.
    pub fn around(graph: &Graph, trace: &Trace, composite: &Composite, first: [usize; 3], last: [usize; 3]) -> Plan {
        let pass = Pass::whole(trace);
        let windows = nested_windows(graph, first, last, pass.full);
        Plan::on(graph, &pass, composite, windows)
    }

    /// Every node of `pass` on its window of `windows` (each within the pass's own).
    pub fn on(graph: &Graph, pass: &Pass, composite: &Composite, windows: Vec<Window>) -> Plan {
        let steps = Steps::new(graph, composite);
        let (steps, targets) = (0..graph.nodes.len()).map(|i| steps.step(pass, i, &windows[i])).unzip();
        Plan { steps, targets, windows, output: graph.output, full: pass.full }
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

/// Each node's window for a pass from the logits in the box `[first, last]` (tensor axes of the
/// input grid `full`): where the node's relevance may be non-zero and where its step sends
/// relevance, found by walking the box back through each node's exact footprint (its kernel,
/// stride and padding, in its own voxels), aligned to the node's and its inputs' resolutions.
/// Outside its window a node's relevance is zero, so the windows give the whole grid's maps;
/// and a node computed on its window from its inputs on theirs ([`Pass::around`]) is exact
/// wherever a rule reads it. Padding nodes move the grid, so a graph with them runs on the
/// whole grid.
pub fn nested_windows(graph: &Graph, first: [usize; 3], last: [usize; 3], full: [usize; 3]) -> Vec<Window> {
    let n = graph.nodes.len();
    if graph
        .nodes
        .iter()
        .any(|node| matches!(node.op, Op::Pad { before, after } if before != [0; 3] || after != [0; 3]))
    {
        return vec![whole(full); n];
    }
    let scales = graph.scales().expect("a validated graph");
    let merges = graph.merges();
    // Per node, per axis, the half-open range of its own voxels its relevance may reach.
    let mut support: Vec<Option<[(usize, usize); 3]>> = vec![None; n];
    let s = scales[graph.output];
    support[graph.output] = Some(std::array::from_fn(|k| (first[k] / s[k], last[k] / s[k] + 1)));
    // Until reached, a node's window is one cell at the origin (merged convs, unused nodes).
    let mut windows: Vec<Window> =
        (0..n).map(|i| Window { lo: [0; 3], hi: std::array::from_fn(|k| scales[i][k].min(full[k])) }).collect();
    for i in (0..n).rev() {
        let Some(out) = support[i] else { continue };
        // A merged norm's step is its conv's, sending relevance to the conv's input.
        let at = merges[i].unwrap_or(i);
        let inputs = &graph.nodes[at].inputs;
        let mut align = scales[i];
        let mut lo: [usize; 3] = std::array::from_fn(|k| out[k].0 * scales[i][k]);
        let mut hi: [usize; 3] = std::array::from_fn(|k| out[k].1 * scales[i][k]);
        for &j in inputs {
            let sj = scales[j];
            let need: [(usize, usize); 3] =
                std::array::from_fn(|k| footprint(&graph.nodes[at].op, out[k], k, full[k] / sj[k]));
            support[j] = Some(match support[j] {
                None => need,
                Some(had) => std::array::from_fn(|k| (had[k].0.min(need[k].0), had[k].1.max(need[k].1))),
            });
            for k in 0..3 {
                align[k] = align[k].max(sj[k]);
                lo[k] = lo[k].min(need[k].0 * sj[k]);
                hi[k] = hi[k].max(need[k].1 * sj[k]);
            }
        }
        windows[i] = Window {
            lo: std::array::from_fn(|k| lo[k] / align[k] * align[k]),
            hi: std::array::from_fn(|k| (hi[k].div_ceil(align[k]) * align[k]).min(full[k])),
        };
        if at != i {
            windows[at] = windows[i];
        }
    }
    windows
}

/// The input voxels (half-open, clipped to the input's `len` voxels) that the output voxels
/// `[lo, hi)` of `op` read along axis `k`, which are also those its relevance step sends to.
fn footprint(op: &Op, (lo, hi): (usize, usize), k: usize, len: usize) -> (usize, usize) {
    let clip = |a: isize, b: isize| (a.clamp(0, len as isize) as usize, b.clamp(0, len as isize) as usize);
    let (lo, hi) = (lo as isize, hi as isize);
    match op {
        Op::Conv(c) if !c.transposed => {
            let (s, p, kk) = (c.stride[k] as isize, c.padding[k] as isize, c.kernel()[k] as isize);
            clip(lo * s - p, (hi - 1) * s - p + kk)
        }
        // Input voxel x writes outputs x·s − p … x·s − p + k − 1.
        Op::Conv(c) => {
            let (s, p, kk) = (c.stride[k] as isize, c.padding[k] as isize, c.kernel()[k] as isize);
            clip((lo + p - kk).div_euclid(s) + 1, (hi - 1 + p).div_euclid(s) + 1)
        }
        Op::MaxPool(f) | Op::AvgPool(f) => clip(lo * f[k] as isize, hi * f[k] as isize),
        Op::Upsample(Mode::Nearest) => clip(lo.div_euclid(2), (hi - 1).div_euclid(2) + 1),
        // Output y interpolates the inputs either side of (y + ½)/2 − ½.
        Op::Upsample(Mode::Trilinear) => clip((lo - 1).div_euclid(2), hi.div_euclid(2) + 1),
        Op::Pad { before, .. } => clip(lo - before[k] as isize, hi - before[k] as isize),
        _ => clip(lo, hi),
    }
}

/// The smallest window holding `a` and `b`.
fn hull(a: &Window, b: &Window) -> Window {
    Window { lo: std::array::from_fn(|k| a.lo[k].min(b.lo[k])), hi: std::array::from_fn(|k| a.hi[k].max(b.hi[k])) }
}

/// `r` (on `from`) added to the relevance gathered in `slot`, both kept on the smallest window
/// that holds them within `within` (where the receiving node's relevance may be non-zero): a
/// skip connection's relevance waits through the deeper levels on its own small window.
fn gather(slot: &mut Option<(Tensor<5>, Window)>, r: Tensor<5>, from: &Window, within: &Window) {
    let lo: [usize; 3] = std::array::from_fn(|k| from.lo[k].max(within.lo[k]));
    let hi: [usize; 3] = std::array::from_fn(|k| from.hi[k].min(within.hi[k]).max(lo[k]));
    if (0..3).any(|k| lo[k] == hi[k]) {
        return;
    }
    let at = Window { lo, hi };
    let r = refit(r, from, &at);
    *slot = Some(match slot.take() {
        None => (r, at),
        Some((s, had)) => {
            let both = hull(&had, &at);
            (refit(s, &had, &both) + refit(r, &at, &both), both)
        }
    });
}

fn add(slot: &mut Option<Tensor<5>>, r: Tensor<5>) {
    *slot = Some(match slot.take() {
        Some(s) => s + r,
        None => r,
    });
}

/// What step `step` sends to each of its targets for relevance `r` of its output.
fn apply(step: &Step, r: Tensor<5>) -> Vec<Tensor<5>> {
    match step {
        Step::Unreached => unreachable!("relevance reached a node merged into another"),
        Step::Rule(rule) => vec![rule.apply(r)],
        Step::Pass => vec![r],
        Step::Unpool(x, f) => vec![max_unpool3d(x.clone(), r, *f)],
        Step::AvgPool { x, inverse, window } => vec![x.clone() * avg_pool3d_adjoint(r * inverse.clone(), *window)],
        Step::Upsample(mode) => vec![upsample2_adjoint(r, *mode)],
        Step::Concat(sizes) => split_channels(r, sizes),
        Step::Add(shares) => shares.iter().map(|s| r.clone() * s.clone()).collect(),
        Step::Pad { before, after } => vec![unpad(r, *before, *after)],
        Step::Scale(f) => vec![r * f.clone()],
        Step::Copy(k) => vec![r; *k],
        Step::Spread(window) => vec![avg_pool3d_adjoint(r, *window)],
    }
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
        for (&j, r) in plan.targets[i].iter().zip(apply(&plan.steps[i], r)) {
            let r = refit(r, &plan.windows[i], &plan.windows[j]);
            add(&mut rel[j], r);
        }
    }
    rel[0].take().expect("relevance reaches the input")
}

/// [`propagate`] for one relevance of the logits without a [`Plan`]: each node's step is made
/// when relevance reaches it and dropped, with the node's output, once applied, so that the
/// pass holds one step's tensors at a time instead of every node's (a click on a large study).
/// `r` is on `windows[graph.output]`; the result on `windows[0]`.
pub fn propagate_once(
    graph: &Graph,
    mut pass: Pass,
    composite: &Composite,
    windows: &[Window],
    r: Tensor<5>,
) -> Tensor<5> {
    let steps = Steps::new(graph, composite);
    let n = graph.nodes.len();
    let mut rel: Vec<Option<(Tensor<5>, Window)>> = vec![None; n];
    rel[graph.output] = Some((r, windows[graph.output]));
    // How many steps not yet made read each node's output: dropped when none does (before the
    // step that read it last is applied).
    let mut left = vec![0usize; n];
    for i in 1..n {
        for j in steps.reads(i) {
            left[j] += 1;
        }
    }
    for j in (1..n).filter(|&j| left[j] == 0) {
        pass.trace.values[j] = None;
    }
    for i in (1..n).rev() {
        if let Some((r, at)) = rel[i].take() {
            let r = refit(r, &at, &windows[i]);
            for (core, wide) in steps.slabs(i, &windows[i], pass.slab_bytes) {
                // The rule is linear in r: each slab's part of r, zero in its margin, on the slab
                // widened by the kernel's reach, where the step is exact for it.
                let (step, targets) = steps.step(&pass, i, &wide);
                let part = if core == windows[i] {
                    r.clone()
                } else {
                    refit(refit(r.clone(), &windows[i], &core), &core, &wide)
                };
                for (&j, out) in targets.iter().zip(apply(&step, part)) {
                    gather(&mut rel[j], out, &wide, &windows[j]);
                }
            }
        }
        for j in steps.reads(i) {
            left[j] -= 1;
            if left[j] == 0 && j != 0 {
                pass.trace.values[j] = None;
            }
        }
    }
    let (r, at) = rel[0].take().expect("relevance reaches the input");
    refit(r, &at, &windows[0])
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
            Step::Scale(f) => Some(get(to[0]) * f.clone()),
            Step::Copy(_) => to.iter().map(|&j| get(j)).reduce(|a, b| a + b),
            Step::Spread(window) => Some(avg_pool3d(get(to[0]), *window)),
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
    let pass = Pass::whole(trace);
    let windows = nested_windows(graph, voxel, voxel, pass.full);
    let all = whole(pass.full);
    let r = refit(r, &all, &windows[graph.output]);
    let relevance = refit(propagate_once(graph, pass, composite, &windows, r), &windows[0], &all);
    Explanation { relevance, logit }
}
