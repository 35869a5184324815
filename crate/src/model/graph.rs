//! A network as a graph of nodes in topological order: what every importer builds and what the
//! graph engine (`lrp/walk.rs`) explains.
//!
//! Each node reads the outputs of earlier nodes (`inputs`), so walking the list forwards is the
//! forward pass and walking it backwards is LRP. The graph also answers the spatial questions
//! the engine asks of any network: how far apart two voxels of each node's output lie
//! (its `scale`, in input voxels), to what the input's sides must be aligned, and how many input
//! voxels one logit reads on each side (the receptive radius).

use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use crate::ops::conv::{conv3d, conv_transpose3d};
use crate::ops::pool::{avg_pool3d, max_pool3d};
use crate::ops::upsample::{upsample2, Mode};

/// A 3D convolution or transposed convolution, PyTorch's parameter layout (`[out, in, k…]`, or
/// `[in, out, k…]` when transposed), zero padding, dilation 1, one group.
#[derive(Clone, Debug)]
pub struct ConvSpec {
    pub weight: Tensor<5>,
    pub bias: Option<Tensor<1>>,
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    /// Transposed only: extra rows at the end of the output (PyTorch `output_padding`).
    pub output_padding: [usize; 3],
    pub transposed: bool,
}

impl ConvSpec {
    pub fn kernel(&self) -> [usize; 3] {
        let d = self.weight.dims();
        [d[2], d[3], d[4]]
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[usize::from(!self.transposed)]
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[usize::from(self.transposed)]
    }

    /// Same map, other parameters (a merged norm's).
    pub fn with(&self, weight: Tensor<5>, bias: Option<Tensor<1>>) -> ConvSpec {
        ConvSpec { weight, bias, ..self.clone() }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let (w, b) = (self.weight.clone(), self.bias.clone());
        if self.transposed {
            let options = ConvTransposeOptions::new(self.stride, self.padding, self.output_padding, [1; 3], 1);
            conv_transpose3d(x, w, b, options)
        } else {
            conv3d(x, w, b, ConvOptions::new(self.stride, self.padding, [1; 3], 1))
        }
    }
}

/// Where a norm's statistics come from.
#[derive(Clone, Debug)]
pub enum Statistics {
    /// Batch norm at inference: the running mean and variance.
    Running { mean: Tensor<1>, var: Tensor<1> },
    /// Instance norm: each channel's mean and (biased) variance over the current volume.
    Instance,
    /// Group norm: each group of channels' mean and variance over the current volume.
    Group(usize),
    /// Instance or group statistics of one whole volume, fixed ([`Graph::freeze`]): the norm
    /// is `z·scale + shift` per channel (its affine included), so that windows of that volume
    /// are normalised as the whole volume was.
    Frozen { scale: Tensor<1>, shift: Tensor<1> },
}

/// Batch, instance or group norm, with or without its affine transform.
#[derive(Clone, Debug)]
pub struct NormSpec {
    pub statistics: Statistics,
    pub weight: Option<Tensor<1>>,
    pub bias: Option<Tensor<1>>,
    pub eps: f32,
    pub channels: usize,
}

impl NormSpec {
    /// The norm on input `z` as `z·scale + shift` per channel (shapes `[C]`; batch 1 for the
    /// statistics of instance and group norm).
    pub fn affine(&self, z: &Tensor<5>) -> (Tensor<1>, Tensor<1>) {
        let [n, c, d, h, w] = z.dims();
        let (mean, var) = match &self.statistics {
            Statistics::Frozen { scale, shift } => return (scale.clone(), shift.clone()),
            Statistics::Running { mean, var } => (mean.clone(), var.clone()),
            Statistics::Instance | Statistics::Group(_) => {
                assert_eq!(n, 1, "instance and group statistics are per volume: batch 1");
                let groups = match self.statistics {
                    Statistics::Group(g) => g,
                    _ => c,
                };
                let flat = z.clone().reshape([groups, c / groups * d * h * w]);
                let mean = mean_rows(flat.clone());
                let var = mean_rows((flat - mean.clone()).powi_scalar(2));
                let per_channel = |t: Tensor<2>| t.reshape([groups, 1]).expand([groups, c / groups]).reshape([c]);
                (per_channel(mean), per_channel(var))
            }
        };
        let inv = (var + self.eps).sqrt().recip();
        let scale = match &self.weight {
            Some(g) => g.clone() * inv,
            None => inv,
        };
        let shift = -(mean * scale.clone());
        let shift = match &self.bias {
            Some(b) => shift + b.clone(),
            None => shift,
        };
        (scale, shift)
    }

    /// Whether the statistics come from the volume at hand (instance and group norm).
    pub fn per_volume(&self) -> bool {
        matches!(self.statistics, Statistics::Instance | Statistics::Group(_))
    }

    pub fn forward(&self, z: Tensor<5>) -> Tensor<5> {
        if z.dims()[0] > 1 && self.per_volume() {
            let parts: Vec<Tensor<5>> = z.split(1, 0).into_iter().map(|v| self.forward(v)).collect();
            return Tensor::cat(parts, 0);
        }
        let (scale, shift) = self.affine(&z);
        per_channel(z, scale, shift)
    }
}

/// The mean of each row of `t` (`[rows, n]` → `[rows, 1]`), summed in blocks of rows of up to 256
/// values and then over the blocks: a float32 sum of one long row loses ~√n·ε, and these means
/// set norms whose outputs LRP divides by (PyTorch's norms sum in blocks too).
fn mean_rows(t: Tensor<2>) -> Tensor<2> {
    let [rows, n] = t.dims();
    let block = (1..=256).rev().find(|b| n % b == 0).unwrap_or(1);
    if block == 1 || block == n {
        return t.mean_dim(1);
    }
    t.reshape([rows, n / block, block]).mean_dim(2).mean_dim(1).reshape([rows, 1])
}

/// `z·scale + shift` with one scale and shift per channel.
pub fn per_channel(z: Tensor<5>, scale: Tensor<1>, shift: Tensor<1>) -> Tensor<5> {
    let c = scale.dims()[0];
    z * scale.reshape([1, c, 1, 1, 1]) + shift.reshape([1, c, 1, 1, 1])
}

/// What a node does.
#[derive(Clone, Debug)]
pub enum Op {
    /// The network's input (node 0, and only there).
    Input,
    Conv(ConvSpec),
    Norm(NormSpec),
    Relu,
    LeakyRelu(f32),
    /// One slope per channel (or one for all).
    PRelu(Tensor<1>),
    /// Window = stride, per axis.
    MaxPool([usize; 3]),
    /// Window = stride, per axis.
    AvgPool([usize; 3]),
    /// ×2 along every axis.
    Upsample(Mode),
    /// Along the channels, in input order.
    Concat,
    /// Element-wise sum of the inputs (a residual connection).
    Add,
    /// Zeros before and after each spatial axis `[d, h, w]`.
    Pad {
        before: [usize; 3],
        after: [usize; 3],
    },
    /// Dropout at inference and anything else that passes its input on.
    Identity,
}

impl Op {
    /// The op's name as PyTorch calls the module, for the model card and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Conv(c) if c.transposed => "ConvTranspose3d",
            Op::Conv(_) => "Conv3d",
            Op::Norm(n) => match n.statistics {
                Statistics::Running { .. } => "BatchNorm3d",
                Statistics::Instance => "InstanceNorm3d",
                Statistics::Group(_) => "GroupNorm",
                Statistics::Frozen { .. } => "Norm (frozen statistics)",
            },
            Op::Relu => "ReLU",
            Op::LeakyRelu(_) => "LeakyReLU",
            Op::PRelu(_) => "PReLU",
            Op::MaxPool(_) => "MaxPool3d",
            Op::AvgPool(_) => "AvgPool3d",
            Op::Upsample(Mode::Nearest) => "Upsample(nearest)",
            Op::Upsample(Mode::Trilinear) => "Upsample(trilinear)",
            Op::Concat => "Concat",
            Op::Add => "Add",
            Op::Pad { .. } => "Pad",
            Op::Identity => "Identity",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The module's name in the source network (`encoder.stages.0.0.convs.0.conv`): composites
    /// assign rules by it, errors name it.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
}

/// A network: nodes in topological order, node 0 the input, `output` the logits (before any
/// softmax or sigmoid: explanations start there).
#[derive(Clone, Debug)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub output: usize,
    pub in_channels: usize,
    pub classes: usize,
}

impl From<&Graph> for Graph {
    fn from(graph: &Graph) -> Graph {
        graph.clone()
    }
}

/// Everything the forward pass computed that LRP reads.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Each node's output; `None` for a conv merged into the norm after it (the norm's output
    /// stands for both).
    pub values: Vec<Option<Tensor<5>>>,
    /// For a norm merged into the conv before it: that conv with the norm folded in.
    pub merged: Vec<Option<ConvSpec>>,
}

impl Trace {
    pub fn value(&self, node: usize) -> &Tensor<5> {
        self.values[node].as_ref().expect("the forward pass kept this node's output")
    }

    pub fn input(&self) -> &Tensor<5> {
        self.value(0)
    }
}

impl Graph {
    /// How many nodes read each node's output.
    pub fn consumers(&self) -> Vec<usize> {
        let mut n = vec![0; self.nodes.len()];
        for node in &self.nodes {
            for &i in &node.inputs {
                n[i] += 1;
            }
        }
        n[self.output] += 1;
        n
    }

    /// For each norm that directly follows a conv read by nothing else: that conv. Such a norm
    /// is folded into its conv before LRP (Zennit's `SequentialMergeBatchNorm`, also for instance
    /// and group norm, with the forward pass's statistics frozen).
    pub fn merges(&self) -> Vec<Option<usize>> {
        let consumers = self.consumers();
        self.nodes
            .iter()
            .map(|node| match (&node.op, node.inputs.as_slice()) {
                (Op::Norm(_), [c]) if matches!(self.nodes[*c].op, Op::Conv(_)) && consumers[*c] == 1 => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// The convs the `…Box` and `…Flat` composites treat as the first layer: as Zennit, the first
    /// conv of the network's modules that reads the input; in an ensemble (`fold_N/` names) each
    /// fold's. Where several convs read the input, a residual shortcut's projection (a conv whose
    /// output, through at most its norm, goes straight into a sum) is not it: PyTorch modules
    /// register their main path before the shortcut, while a graph in execution order (ONNX) may
    /// compute the shortcut first.
    pub fn first_layers(&self) -> Vec<usize> {
        let readers = self.readers();
        let shortcut = |i: usize| {
            let into_add = |j: usize| readers[j].len() == 1 && matches!(self.nodes[readers[j][0]].op, Op::Add);
            into_add(i)
                || (readers[i].len() == 1
                    && matches!(self.nodes[readers[i][0]].op, Op::Norm(_))
                    && into_add(readers[i][0]))
        };
        let mut networks: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node.op, Op::Conv(_)) && node.inputs == [0] {
                let network = node.name.split_once('/').map_or("", |(fold, _)| fold);
                match networks.iter_mut().find(|(n, _)| *n == network) {
                    Some((_, convs)) => convs.push(i),
                    None => networks.push((network, vec![i])),
                }
            }
        }
        networks
            .into_iter()
            .map(|(_, convs)| convs.iter().copied().find(|&c| !shortcut(c)).unwrap_or(convs[0]))
            .collect()
    }

    /// The nodes that read each node.
    fn readers(&self) -> Vec<Vec<usize>> {
        let mut r = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &j in &node.inputs {
                r[j].push(i);
            }
        }
        r
    }

    /// The graph of `nodes` whose output is node `output`, its classes that node's channels;
    /// checked.
    pub fn from_nodes(nodes: Vec<Node>, output: usize, in_channels: usize) -> Result<Graph, String> {
        let mut graph = Graph { nodes, output, in_channels, classes: 0 };
        graph.classes = *graph.channels()?.get(output).ok_or("the output is not a node of the graph")?;
        graph.validate()?;
        Ok(graph)
    }

    /// Checks the graph's wiring and channel counts; returns each node's channels.
    pub fn validate(&self) -> Result<Vec<usize>, String> {
        let channels = self.channels()?;
        if self.output >= self.nodes.len() || channels[self.output] != self.classes {
            return Err(format!(
                "the output has {:?} channels, not {} classes",
                channels.get(self.output),
                self.classes
            ));
        }
        self.scales()?;
        Ok(channels)
    }

    /// Each node's channels, checking the wiring and every node's channel counts.
    fn channels(&self) -> Result<Vec<usize>, String> {
        let mut channels = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let at = || format!("node \"{}\" ({})", node.name, node.op.kind());
            if node.inputs.iter().any(|&j| j >= i) {
                return Err(format!("{} reads a node that comes after it", at()));
            }
            let ins: Vec<usize> = node.inputs.iter().map(|&j| channels[j]).collect();
            let arity = match node.op {
                Op::Input => 0,
                Op::Concat | Op::Add => ins.len().max(2),
                _ => 1,
            };
            if ins.len() != arity || matches!(node.op, Op::Input) != (i == 0) {
                return Err(format!("{} has {} inputs", at(), ins.len()));
            }
            let c = match &node.op {
                Op::Input => self.in_channels,
                Op::Conv(conv) if conv.in_channels() != ins[0] => {
                    return Err(format!("{} reads {} channels but receives {}", at(), conv.in_channels(), ins[0]))
                }
                Op::Conv(conv) => conv.out_channels(),
                Op::Norm(n) if n.channels != ins[0] => {
                    return Err(format!("{} normalises {} channels but receives {}", at(), n.channels, ins[0]))
                }
                Op::Norm(NormSpec { statistics: Statistics::Group(g), channels, .. })
                    if *g == 0 || channels % g != 0 =>
                {
                    return Err(format!("{} splits {channels} channels into {g} groups", at()))
                }
                Op::PRelu(w) if w.dims()[0] != 1 && w.dims()[0] != ins[0] => {
                    return Err(format!("{} has {} slopes for {} channels", at(), w.dims()[0], ins[0]))
                }
                Op::Concat => ins.iter().sum(),
                Op::Add if ins.iter().any(|&c| c != ins[0]) => {
                    return Err(format!("{} adds tensors of {ins:?} channels", at()))
                }
                _ => ins[0],
            };
            channels.push(c);
        }
        Ok(channels)
    }

    /// Input voxels per voxel of each node's output, per axis `[d, h, w]` (1 at the input, 2
    /// after one stride-2 step down, …).
    pub fn scales(&self) -> Result<Vec<[usize; 3]>, String> {
        let mut out: Vec<[usize; 3]> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let inp = node.inputs.first().map(|&i| out[i]).unwrap_or([1; 3]);
            let s = match &node.op {
                Op::Conv(c) if c.transposed => {
                    if (0..3).any(|k| inp[k] % c.stride[k] != 0) {
                        return Err(format!("\"{}\" up-samples beyond the input's resolution", node.name));
                    }
                    std::array::from_fn(|k| inp[k] / c.stride[k])
                }
                Op::Conv(c) => std::array::from_fn(|k| inp[k] * c.stride[k]),
                Op::MaxPool(f) | Op::AvgPool(f) => std::array::from_fn(|k| inp[k] * f[k]),
                Op::Upsample(_) if inp.iter().any(|v| v % 2 != 0) => {
                    return Err(format!("\"{}\" up-samples beyond the input's resolution", node.name))
                }
                Op::Upsample(_) => inp.map(|v| v / 2),
                Op::Concat | Op::Add if node.inputs.iter().any(|&i| out[i] != inp) => {
                    return Err(format!("\"{}\" joins tensors of different resolutions", node.name))
                }
                _ => inp,
            };
            out.push(s);
        }
        Ok(out)
    }

    /// The coarsest resolution's step on any axis: what studies are padded to on every side.
    pub fn alignment(&self) -> usize {
        self.align().into_iter().max().unwrap_or(1)
    }

    /// What the input's sides `[d, h, w]` must be multiples of: the coarsest resolution.
    pub fn align(&self) -> [usize; 3] {
        let scales = self.scales().expect("a validated graph");
        std::array::from_fn(|k| scales.iter().map(|s| s[k]).max().unwrap_or(1))
    }

    /// Input voxels, per axis, by which each node widens what its output depends on (its
    /// kernel's reach, at its input's resolution).
    pub fn reaches(&self) -> Vec<[usize; 3]> {
        let scales = self.scales().expect("a validated graph");
        self.nodes
            .iter()
            .map(|node| {
                let inp = node.inputs.first().map(|&i| scales[i]).unwrap_or([1; 3]);
                match &node.op {
                    // A stride-1 conv reaches its padding's side further; a strided one its whole
                    // footprint beyond the first voxel.
                    Op::Conv(c) if !c.transposed => std::array::from_fn(|k| {
                        let k_ = c.kernel()[k];
                        let span =
                            if c.stride[k] == 1 { c.padding[k].max(k_ - 1 - c.padding[k].min(k_ - 1)) } else { k_ - 1 };
                        span * inp[k]
                    }),
                    // An output voxel of a transposed conv reads ⌈k / s⌉ input voxels.
                    Op::Conv(c) => std::array::from_fn(|k| c.kernel()[k].div_ceil(c.stride[k]) * inp[k]),
                    Op::MaxPool(f) | Op::AvgPool(f) => std::array::from_fn(|k| (f[k] - 1) * inp[k]),
                    Op::Upsample(Mode::Nearest) => inp,
                    // Interpolation reads the neighbour on either side.
                    Op::Upsample(Mode::Trilinear) => inp.map(|v| 2 * v),
                    _ => [0; 3],
                }
            })
            .collect()
    }

    /// The largest distance, per axis in input voxels, from a logit to an input voxel it
    /// depends on: the longest path of [`Graph::reaches`] from the input to the output.
    pub fn receptive_radius(&self) -> [usize; 3] {
        let reaches = self.reaches();
        let mut rf: Vec<[usize; 3]> = Vec::with_capacity(self.nodes.len());
        for (node, reach) in self.nodes.iter().zip(&reaches) {
            let before: [usize; 3] = std::array::from_fn(|k| node.inputs.iter().map(|&i| rf[i][k]).max().unwrap_or(0));
            rf.push(std::array::from_fn(|k| before[k] + reach[k]));
        }
        rf[self.output]
    }

    /// Whether some node's statistics span the whole volume (instance or group norm): such a
    /// network's logits change when the study is cut into windows.
    pub fn has_volume_statistics(&self) -> bool {
        self.nodes.iter().any(|n| matches!(&n.op, Op::Norm(s) if s.per_volume()))
    }

    /// Learned parameters (weights, biases, norm affines and running statistics, PReLU slopes).
    pub fn parameters(&self) -> usize {
        let n1 = |t: &Option<Tensor<1>>| t.as_ref().map_or(0, |t| t.dims()[0]);
        self.nodes
            .iter()
            .map(|node| match &node.op {
                Op::Conv(c) => c.weight.dims().iter().product::<usize>() + n1(&c.bias),
                Op::Norm(n) => {
                    n1(&n.weight)
                        + n1(&n.bias)
                        + if matches!(n.statistics, Statistics::Running { .. }) { 2 * n.channels } else { 0 }
                }
                Op::PRelu(w) => w.dims()[0],
                _ => 0,
            })
            .sum()
    }

    pub(crate) fn run(&self, node: &Node, inputs: Vec<Tensor<5>>) -> Tensor<5> {
        let one = || inputs[0].clone();
        match &node.op {
            Op::Input => unreachable!("the input is given"),
            Op::Conv(c) => c.forward(one()),
            Op::Norm(n) => n.forward(one()),
            Op::Relu => burn::tensor::activation::relu(one()),
            Op::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(one(), *slope as f64),
            Op::PRelu(w) => {
                let x = one();
                let c = x.dims()[1];
                let slope = if w.dims()[0] == 1 { w.clone().expand([c]) } else { w.clone() };
                x.clone().clamp_min(0.0) + x.clamp_max(0.0) * slope.reshape([1, c, 1, 1, 1])
            }
            Op::MaxPool(f) => max_pool3d(one(), *f),
            Op::AvgPool(f) => avg_pool3d(one(), *f),
            Op::Upsample(mode) => upsample2(one(), *mode),
            Op::Concat => Tensor::cat(inputs, 1),
            Op::Add => inputs.into_iter().reduce(|a, b| a + b).expect("two inputs"),
            Op::Pad { before, after } => pad(one(), *before, *after),
            Op::Identity => one(),
        }
    }

    /// The logits, each intermediate dropped after its last reader (what segmentation needs).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.forward_observed(x, |_, _| {})
    }

    /// [`Graph::forward`], calling `observe(i, output)` as each node `i` is computed: the
    /// profile of `cargo bench --bench nnunet -- --profile` times the nodes this way.
    pub fn forward_observed(&self, x: Tensor<5>, mut observe: impl FnMut(usize, &Tensor<5>)) -> Tensor<5> {
        let mut left = self.consumers();
        let mut values: Vec<Option<Tensor<5>>> = vec![None; self.nodes.len()];
        values[0] = Some(x);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            let inputs = node
                .inputs
                .iter()
                .map(|&j| {
                    left[j] -= 1;
                    let v = values[j].as_ref().expect("computed before");
                    let v = v.clone();
                    if left[j] == 0 {
                        values[j] = None;
                    }
                    v
                })
                .collect();
            let out = self.run(node, inputs);
            observe(i, &out);
            values[i] = Some(out);
        }
        values[self.output].take().expect("the output is computed")
    }

    /// The logits of `x` (one volume) and this graph with every instance and group norm frozen
    /// to the statistics of `x` ([`Statistics::Frozen`]): the frozen graph gives any window of
    /// `x` the values the whole-volume pass has there, so that large studies run in windows.
    /// One pass, each intermediate dropped after its last reader.
    pub fn freeze(&self, x: Tensor<5>) -> (Graph, Tensor<5>) {
        let mut frozen = self.clone();
        let mut left = self.consumers();
        let mut values: Vec<Option<Tensor<5>>> = vec![None; self.nodes.len()];
        values[0] = Some(x);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            let inputs: Vec<Tensor<5>> = node
                .inputs
                .iter()
                .map(|&j| {
                    left[j] -= 1;
                    let v = values[j].clone().expect("computed before");
                    if left[j] == 0 {
                        values[j] = None;
                    }
                    v
                })
                .collect();
            if let Op::Norm(norm) = &node.op {
                if norm.per_volume() {
                    let (scale, shift) = norm.affine(&inputs[0]);
                    let spec = NormSpec {
                        statistics: Statistics::Frozen { scale: scale.clone(), shift: shift.clone() },
                        weight: None,
                        bias: None,
                        ..norm.clone()
                    };
                    frozen.nodes[i].op = Op::Norm(spec);
                    values[i] = Some(per_channel(inputs[0].clone(), scale, shift));
                    continue;
                }
            }
            values[i] = Some(self.run(node, inputs));
        }
        let logits = values[self.output].take().expect("the output is computed");
        (frozen, logits)
    }

    /// The forward pass LRP reads: every node's output, and each mergeable norm folded into
    /// its conv with this input's statistics. A merged pair's output is the merged conv's
    /// (not the norm applied to the conv's output): the rules divide by that same number, as
    /// Zennit does after canonizing, so that small ε stays accurate.
    ///
    /// The conv itself runs first only where the norm's statistics come from its output
    /// (instance and group norm); with fixed ones (batch norm, frozen) the merged conv is the
    /// only conv of the pair.
    pub fn trace(&self, x: Tensor<5>) -> Trace {
        let merges = self.merges();
        let fixed: Vec<usize> = (0..self.nodes.len())
            .filter_map(|i| match (&self.nodes[i].op, merges[i]) {
                (Op::Norm(norm), Some(c)) if !norm.per_volume() => Some(c),
                _ => None,
            })
            .collect();
        let mut values: Vec<Option<Tensor<5>>> = vec![None; self.nodes.len()];
        let mut merged: Vec<Option<ConvSpec>> = vec![None; self.nodes.len()];
        values[0] = Some(x);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            if fixed.contains(&i) {
                continue;
            }
            if let (Some(c), Op::Norm(norm)) = (merges[i], &node.op) {
                let Op::Conv(conv) = &self.nodes[c].op else { unreachable!("merges pairs a norm with a conv") };
                let x = values[self.nodes[c].inputs[0]].clone().expect("computed before");
                // Fixed statistics: the tensor given for them is not read.
                let conv_out = values[c].take().unwrap_or_else(|| x.clone());
                let spec = merge(conv, norm, &conv_out);
                values[i] = Some(spec.forward(x));
                merged[i] = Some(spec);
                continue;
            }
            let inputs = node.inputs.iter().map(|&j| values[j].clone().expect("computed before")).collect();
            values[i] = Some(self.run(node, inputs));
        }
        Trace { values, merged }
    }
}

/// `conv` followed by `norm` (statistics from `conv_out`, frozen) as one conv: with the norm as
/// `z·s + t`, `w' = w·s` per output channel and `b' = b·s + t`.
pub fn merge(conv: &ConvSpec, norm: &NormSpec, conv_out: &Tensor<5>) -> ConvSpec {
    let (scale, shift) = norm.affine(conv_out);
    let c = scale.dims()[0];
    let factor =
        if conv.transposed { scale.clone().reshape([1, c, 1, 1, 1]) } else { scale.clone().reshape([c, 1, 1, 1, 1]) };
    let bias = match &conv.bias {
        Some(b) => b.clone() * scale + shift,
        None => shift,
    };
    conv.with(conv.weight.clone() * factor, Some(bias))
}

/// `x` with zeros added before and after each spatial axis.
pub fn pad(x: Tensor<5>, before: [usize; 3], after: [usize; 3]) -> Tensor<5> {
    if before == [0; 3] && after == [0; 3] {
        return x;
    }
    let [n, c, d, h, w] = x.dims();
    let out = [n, c, d + before[0] + after[0], h + before[1] + after[1], w + before[2] + after[2]];
    Tensor::zeros(out, &x.device())
        .slice_assign([0..n, 0..c, before[0]..before[0] + d, before[1]..before[1] + h, before[2]..before[2] + w], x)
}

/// The adjoint of [`pad`]: the inner part.
pub fn unpad(g: Tensor<5>, before: [usize; 3], after: [usize; 3]) -> Tensor<5> {
    let [n, c, d, h, w] = g.dims();
    g.slice([0..n, 0..c, before[0]..d - after[0], before[1]..h - after[1], before[2]..w - after[2]])
}
