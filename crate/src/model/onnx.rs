//! ONNX exports of 3D CNNs (`torch.onnx.export`, opset 13 or later), parsed by burn's `onnx-ir`,
//! which folds the shape computations of an export with a fixed input shape (`Shape`, `Gather`,
//! `ConstantOfShape`, `Slice`, …) into constants; weights come from the initializers.
//!
//! The ops of [`Op`] are read as they are: `Conv`/`ConvTranspose` (3D, one group, dilation 1,
//! symmetric padding), `BatchNormalization`, `InstanceNormalization`, `GroupNormalization`,
//! `Relu`, `LeakyRelu`, `PRelu`, `MaxPool`/`AveragePool` (window = stride), `Resize`/`Upsample`
//! ×2 (nearest as PyTorch's, or trilinear without aligned corners), `Concat` on the channels,
//! `Add` of two tensors, `Pad` with zeros, `Identity` and `Dropout`. Three patterns of
//! PyTorch's exporter are read back into the op they stand for: `Reshape` → instance norm →
//! `Reshape` is a group norm; `Mul` and `Add` by per-channel constants after a norm are its
//! affine (and an `Add` of a constant after a conv is its bias). A `Softmax`, `LogSoftmax` or
//! `Sigmoid` on the output is left out (explanations start from the logits). Anything else that
//! reads the network's tensors is refused, naming the node and its op.
//!
//! Node names are onnx-ir's (`conv3d4`, `resize1`: the op and its rank in the file).

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use onnx_ir::ir::{ArgType, Argument, TensorDataExt};
use onnx_ir::node::pad::{ConstantValueInput, PadInput, PadMode};
use onnx_ir::node::padding::PaddingConfig3d;
use onnx_ir::node::resize::{CoordinateTransformMode, NearestMode, ResizeMode, ResizeScales, ResizeSizes};
use onnx_ir::Node as OnnxNode;

use super::card::{Channel, ModelCard, Normalisation};
use super::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use crate::ops::upsample::Mode;

/// What an ONNX value is to the graph being built.
#[derive(Clone, Copy)]
enum Value {
    /// The output of a node of the graph.
    Node(usize),
    /// Node `x` reshaped to `[n, groups, -1]`: the first step of an exported group norm.
    Grouped { x: usize, groups: usize },
    /// The grouped tensor normalised per group: the second step.
    GroupNormed { x: usize, groups: usize, eps: f32 },
}

struct Importer<'a> {
    nodes: Vec<Node>,
    values: HashMap<String, Value>,
    /// How many ONNX nodes read each value (a norm's affine is folded only into a norm that
    /// nothing else reads).
    readers: HashMap<String, usize>,
    /// Each node's channels.
    channels: Vec<usize>,
    /// Output activations left out (name, the node they read): only the output's may be.
    finals: Vec<(String, usize)>,
    device: &'a Device,
}

/// The ops the engine explains, for the refusal message.
const SUPPORTED: &str = "Conv, ConvTranspose, BatchNormalization, InstanceNormalization, GroupNormalization, Relu, \
                         LeakyRelu, PRelu, MaxPool, AveragePool, Resize ×2, Concat, Add, Pad, Identity, Dropout";

fn at(node: &OnnxNode) -> String {
    format!("node \"{}\" ({})", node.name(), node.node_type())
}

/// A constant input's values and shape.
fn constant(node: &OnnxNode, arg: &Argument, what: &str) -> Result<(Vec<f32>, Vec<usize>), String> {
    let data = arg.value().ok_or_else(|| {
        format!(
            "{}: its {what} is computed while the network runs; export with a fixed input shape (no dynamic_axes)",
            at(node)
        )
    })?;
    let values = data.to_f32_vec().map_err(|e| format!("{}: its {what} is not numeric: {e:?}", at(node)))?;
    Ok((values, data.shape().to_vec()))
}

/// A per-channel constant (shape `[C]`, `[C, 1, 1, 1]` or `[1, C, 1, 1, 1]`) of `c` values.
fn per_channel(node: &OnnxNode, arg: &Argument, c: usize) -> Result<Vec<f32>, String> {
    let (values, shape) = constant(node, arg, "constant operand")?;
    let long = shape.iter().filter(|&&n| n != 1).count();
    if values.len() == c && long <= 1 && shape.len() <= 5 {
        return Ok(values);
    }
    if values.len() == 1 {
        return Ok(vec![values[0]; c]);
    }
    Err(format!("{}: a constant of shape {shape:?}, not one value per channel ({c})", at(node)))
}

impl Importer<'_> {
    fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>, channels: usize) -> usize {
        self.nodes.push(Node { name: name.to_string(), op, inputs });
        self.channels.push(channels);
        self.nodes.len() - 1
    }

    fn tensor<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    /// The graph node an input of `node` is (refused when it is half of a pattern).
    fn input(&self, node: &OnnxNode, arg: &Argument) -> Result<usize, String> {
        match self.values.get(&arg.name) {
            Some(Value::Node(i)) => Ok(*i),
            Some(_) => Err(format!(
                "{} reads a reshaped tensor that is not a group norm (Reshape, InstanceNormalization, Reshape)",
                at(node)
            )),
            None => Err(format!("{} reads \"{}\", which no supported node computes", at(node), arg.name)),
        }
    }

    fn tracked(&self, arg: &Argument) -> bool {
        self.values.contains_key(&arg.name)
    }

    fn output(&mut self, node: &OnnxNode, v: Value) {
        if let Some(out) = node.outputs().first() {
            self.values.insert(out.name.clone(), v);
        }
    }

    fn conv(&mut self, node: &OnnxNode) -> Result<usize, String> {
        let ins = node.inputs();
        let x = self.input(node, &ins[0])?;
        let (w, shape) = constant(node, &ins[1], "weight")?;
        let [a, b, k0, k1, k2]: [usize; 5] =
            shape.clone().try_into().map_err(|_| format!("{}: a weight of shape {shape:?}", at(node)))?;
        let (stride, padding, output_padding, transposed) = match node {
            OnnxNode::Conv3d(c) => {
                let cf = &c.config;
                if cf.dilation != [1; 3] || cf.groups != 1 {
                    return Err(format!(
                        "{}: dilation {:?}, {} groups (only 1 and 1)",
                        at(node),
                        cf.dilation,
                        cf.groups
                    ));
                }
                (cf.stride, symmetric(node, &cf.padding)?, [0; 3], false)
            }
            OnnxNode::ConvTranspose3d(c) => {
                let cf = &c.config;
                if cf.dilation != [1; 3] || cf.groups != 1 || cf.output_shape.is_some() {
                    return Err(format!(
                        "{}: dilation {:?}, {} groups or an output_shape (only dilation 1, one group)",
                        at(node),
                        cf.dilation,
                        cf.groups
                    ));
                }
                (cf.stride, cf.padding, cf.padding_out, true)
            }
            _ => unreachable!("conv is called on convs"),
        };
        let out = if transposed { b } else { a };
        let bias = match ins.get(2).filter(|a| !a.is_optional()) {
            Some(arg) => Some(self.tensor(per_channel(node, arg, out)?, [out])),
            None => None,
        };
        let weight = self.tensor(w, [a, b, k0, k1, k2]);
        let spec = ConvSpec { weight, bias, stride, padding, output_padding, transposed };
        if spec.in_channels() != self.channels[x] {
            return Err(format!("{}: reads {} channels, receives {}", at(node), spec.in_channels(), self.channels[x]));
        }
        Ok(self.push(node.name(), Op::Conv(spec), vec![x], out))
    }

    /// A norm with per-channel `scale` and `bias` inputs (`ins[1]`, `ins[2]`).
    fn norm(&mut self, node: &OnnxNode, statistics: Statistics, eps: f64) -> Result<usize, String> {
        let ins = node.inputs();
        let x = self.input(node, &ins[0])?;
        let c = self.channels[x];
        let groups = match statistics {
            Statistics::Group(g) => g,
            _ => c,
        };
        // GroupNormalization-18 has one scale and bias per group, -21 one per channel.
        let affine = |me: &Self, arg: &Argument| -> Result<Vec<f32>, String> {
            let (v, _) = constant(node, arg, "scale or bias")?;
            if v.len() == groups && groups != c {
                return Ok(v.iter().flat_map(|&g| std::iter::repeat_n(g, c / groups)).collect());
            }
            per_channel(node, arg, c).map_err(|e| format!("{e} ({} channels reach it)", me.channels[x]))
        };
        let (scale, shift) = (affine(self, &ins[1])?, affine(self, &ins[2])?);
        // PyTorch writes a norm without affine as one with scale 1 and shift 0.
        let plain = scale.iter().all(|&v| v == 1.0) && shift.iter().all(|&v| v == 0.0);
        let (weight, bias) =
            if plain { (None, None) } else { (Some(self.tensor(scale, [c])), Some(self.tensor(shift, [c]))) };
        let spec = NormSpec { statistics, weight, bias, eps: eps as f32, channels: c };
        Ok(self.push(node.name(), Op::Norm(spec), vec![x], c))
    }

    /// `x · m` or `x + m` with a per-channel constant `m`, folded into the norm (or, for `+`, the
    /// conv) that computes `x` when nothing else reads it.
    fn fold(&mut self, node: &OnnxNode, add: bool) -> Result<(), String> {
        let ins = node.inputs();
        let (arg, constant_arg) = if self.tracked(&ins[0]) { (&ins[0], &ins[1]) } else { (&ins[1], &ins[0]) };
        let x = self.input(node, arg)?;
        let c = self.channels[x];
        let m = self.tensor(per_channel(node, constant_arg, c)?, [c]);
        let alone = self.readers.get(&arg.name).copied().unwrap_or(0) == 1;
        let op = if add { "Add" } else { "Mul" };
        match &mut self.nodes[x].op {
            Op::Norm(n) if alone => {
                if add {
                    n.bias = Some(n.bias.take().map_or(m.clone(), |b| b + m));
                } else {
                    let ones = Tensor::ones([c], self.device);
                    n.weight = Some(n.weight.take().unwrap_or(ones) * m.clone());
                    n.bias = n.bias.take().map(|b| b * m);
                }
            }
            Op::Conv(conv) if alone && add => {
                conv.bias = Some(conv.bias.take().map_or(m.clone(), |b| b + m));
            }
            _ => {
                return Err(format!(
                    "{}: {op} by a constant is read only as a norm's affine (or a conv's bias), not after {} \"{}\"",
                    at(node),
                    self.nodes[x].op.kind(),
                    self.nodes[x].name
                ))
            }
        }
        self.output(node, Value::Node(x));
        Ok(())
    }

    fn resize(&mut self, node: &OnnxNode) -> Result<usize, String> {
        let (OnnxNode::Resize(r) | OnnxNode::Upsample(r)) = node else { unreachable!("resize is called on resizes") };
        let x = self.input(node, &node.inputs()[0])?;
        let cf = &r.config;
        let in_shape = node.inputs()[0].ty.static_shape_known();
        let factors: Option<Vec<f32>> = match (&cf.scales, &cf.sizes) {
            (Some(ResizeScales::Static(s)), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(ResizeSizes::Static(s))) if !s.is_empty() => in_shape
                .as_ref()
                .filter(|i| i.len() == s.len())
                .map(|i| s.iter().zip(i).map(|(&o, &n)| o as f32 / n as f32).collect()),
            _ => None,
        };
        // All five axes, or (with opset 18's `axes`) the three spatial ones.
        let doubles = match factors.as_deref() {
            Some([1.0, 1.0, rest @ ..]) | Some(rest) => rest == [2.0, 2.0, 2.0],
            None => false,
        };
        if !doubles {
            return Err(format!(
                "{}: scales {factors:?}; only ×2 along every spatial axis is supported (export with a fixed input \
                 shape)",
                at(node)
            ));
        }
        let mode = match (&cf.mode, &cf.coordinate_transformation_mode, &cf.nearest_mode) {
            (ResizeMode::Nearest, CoordinateTransformMode::Asymmetric, NearestMode::Floor) => Mode::Nearest,
            (ResizeMode::Linear, CoordinateTransformMode::HalfPixel | CoordinateTransformMode::PytorchHalfPixel, _) => {
                Mode::Trilinear
            }
            (mode, coords, _) => {
                return Err(format!(
                    "{}: {mode:?} with {coords:?} coordinates; supported: PyTorch's nearest, and trilinear without \
                     align_corners",
                    at(node)
                ))
            }
        };
        let c = self.channels[x];
        Ok(self.push(node.name(), Op::Upsample(mode), vec![x], c))
    }

    fn pad(&mut self, node: &OnnxNode) -> Result<Value, String> {
        let OnnxNode::Pad(p) = node else { unreachable!("pad is called on pads") };
        let x = self.input(node, &node.inputs()[0])?;
        let pads = match &p.config.pads {
            PadInput::Static(v) if v.len() == 5 => v.clone(),
            _ => return Err(format!("{}: pads computed while the network runs, or not 5D", at(node))),
        };
        if pads.iter().all(|&(a, b)| a == 0 && b == 0) {
            return Ok(Value::Node(x));
        }
        let zero = matches!(p.config.constant_value, ConstantValueInput::Static(v) if v == 0.0);
        if p.config.mode != PadMode::Constant || !zero || pads[0] != (0, 0) || pads[1] != (0, 0) {
            return Err(format!(
                "{}: {:?} padding of {pads:?}; only zeros around the spatial axes are supported",
                at(node),
                p.config.mode
            ));
        }
        let before = [pads[2].0, pads[3].0, pads[4].0];
        let after = [pads[2].1, pads[3].1, pads[4].1];
        let c = self.channels[x];
        Ok(Value::Node(self.push(node.name(), Op::Pad { before, after }, vec![x], c)))
    }

    fn pool(&mut self, node: &OnnxNode) -> Result<usize, String> {
        let x = self.input(node, &node.inputs()[0])?;
        let (kernel, strides, padding, dilation, max) = match node {
            OnnxNode::MaxPool3d(p) => {
                (p.config.kernel_size, p.config.strides, &p.config.padding, p.config.dilation, true)
            }
            OnnxNode::AveragePool3d(p) => {
                (p.config.kernel_size, p.config.strides, &p.config.padding, p.config.dilation, false)
            }
            _ => unreachable!("pool is called on pools"),
        };
        if kernel != strides || padding.as_tuple() != (0, 0, 0, 0, 0, 0) || dilation != [1; 3] {
            return Err(format!(
                "{}: window {kernel:?}, stride {strides:?}, padding {padding}; only windows equal to the stride, \
                 without padding, are supported",
                at(node)
            ));
        }
        let c = self.channels[x];
        let op = if max { Op::MaxPool(kernel) } else { Op::AvgPool(kernel) };
        Ok(self.push(node.name(), op, vec![x], c))
    }

    /// Reads one ONNX node into the graph.
    fn node(&mut self, node: &OnnxNode) -> Result<(), String> {
        if !node.inputs().iter().any(|a| self.tracked(a)) {
            // A constant or a shape computation: onnx-ir folded what it could, and the ops
            // that need the result read it as a constant.
            return Ok(());
        }
        let ins = node.inputs();
        let v = match node {
            OnnxNode::Conv3d(_) | OnnxNode::ConvTranspose3d(_) => Value::Node(self.conv(node)?),
            OnnxNode::BatchNormalization(b) => {
                let eps = match &b.config {
                    onnx_ir::node::batch_norm::BatchNormConfig::Static(s) => s.epsilon,
                    onnx_ir::node::batch_norm::BatchNormConfig::Runtime(s) => s.epsilon,
                };
                let x = self.input(node, &ins[0])?;
                let c = self.channels[x];
                let mean = self.tensor(per_channel(node, &ins[3], c)?, [c]);
                let var = self.tensor(per_channel(node, &ins[4], c)?, [c]);
                Value::Node(self.norm(node, Statistics::Running { mean, var }, eps)?)
            }
            OnnxNode::InstanceNormalization(n) => match self.values.get(&ins[0].name).copied() {
                Some(Value::Grouped { x, groups }) => {
                    let (s, _) = constant(node, &ins[1], "scale")?;
                    let (b, _) = constant(node, &ins[2], "bias")?;
                    if s.iter().any(|&v| v != 1.0) || b.iter().any(|&v| v != 0.0) {
                        return Err(format!("{}: a group norm with a per-group affine", at(node)));
                    }
                    Value::GroupNormed { x, groups, eps: n.config.epsilon as f32 }
                }
                _ => Value::Node(self.norm(node, Statistics::Instance, n.config.epsilon)?),
            },
            OnnxNode::GroupNormalization(n) => {
                Value::Node(self.norm(node, Statistics::Group(n.config.num_groups), n.config.epsilon)?)
            }
            OnnxNode::Reshape(_) => match self.values.get(&ins[0].name).copied() {
                Some(Value::Node(x)) => {
                    let shape = node.outputs()[0].ty.static_shape().cloned().unwrap_or_default();
                    match shape.as_slice() {
                        [_, Some(groups), _] if *groups > 0 && self.channels[x] % groups == 0 => {
                            Value::Grouped { x, groups: *groups }
                        }
                        _ => {
                            return Err(format!(
                                "{}: a reshape to {shape:?} (read only as the first step of a group norm)",
                                at(node)
                            ))
                        }
                    }
                }
                Some(Value::GroupNormed { x, groups, eps }) => {
                    let c = self.channels[x];
                    let spec =
                        NormSpec { statistics: Statistics::Group(groups), weight: None, bias: None, eps, channels: c };
                    Value::Node(self.push(node.name(), Op::Norm(spec), vec![x], c))
                }
                _ => return Err(format!("{}: a reshape that is not part of a group norm", at(node))),
            },
            OnnxNode::Mul(_) | OnnxNode::Add(_) if !ins.iter().all(|a| self.tracked(a)) => {
                return self.fold(node, matches!(node, OnnxNode::Add(_)));
            }
            OnnxNode::Add(_) => {
                let (a, b) = (self.input(node, &ins[0])?, self.input(node, &ins[1])?);
                if self.channels[a] != self.channels[b] {
                    return Err(format!("{}: adds {} and {} channels", at(node), self.channels[a], self.channels[b]));
                }
                let c = self.channels[a];
                Value::Node(self.push(node.name(), Op::Add, vec![a, b], c))
            }
            OnnxNode::Relu(_) => self.unary(node, Op::Relu)?,
            OnnxNode::LeakyRelu(l) => self.unary(node, Op::LeakyRelu(l.config.alpha as f32))?,
            OnnxNode::PRelu(_) => {
                let x = self.input(node, &ins[0])?;
                let (slopes, _) = constant(node, &ins[1], "slope")?;
                let c = self.channels[x];
                if slopes.len() != 1 && slopes.len() != c {
                    return Err(format!("{}: {} slopes for {c} channels", at(node), slopes.len()));
                }
                let n = slopes.len();
                let op = Op::PRelu(self.tensor(slopes, [n]));
                Value::Node(self.push(node.name(), op, vec![x], c))
            }
            OnnxNode::MaxPool3d(_) | OnnxNode::AveragePool3d(_) => Value::Node(self.pool(node)?),
            OnnxNode::Resize(_) | OnnxNode::Upsample(_) => Value::Node(self.resize(node)?),
            OnnxNode::Concat(c) => {
                if c.config.axis != 1 {
                    return Err(format!(
                        "{}: concatenation along axis {} (only channels, axis 1)",
                        at(node),
                        c.config.axis
                    ));
                }
                let parts = ins.iter().map(|a| self.input(node, a)).collect::<Result<Vec<_>, _>>()?;
                let channels = parts.iter().map(|&p| self.channels[p]).sum();
                Value::Node(self.push(node.name(), Op::Concat, parts, channels))
            }
            OnnxNode::Pad(_) => self.pad(node)?,
            OnnxNode::Identity(_) | OnnxNode::Dropout(_) => Value::Node(self.input(node, &ins[0])?),
            // Only its shape is read (folded where the input shape is fixed).
            OnnxNode::Shape(_) => return Ok(()),
            OnnxNode::Softmax(_) | OnnxNode::LogSoftmax(_) | OnnxNode::Sigmoid(_) => {
                let x = self.input(node, &ins[0])?;
                let out = node.outputs().first().map(|o| o.name.clone()).unwrap_or_default();
                self.values.insert(out, Value::Node(x));
                self.finals.push((node.name().to_string(), x));
                return Ok(());
            }
            _ => return Err(format!("{} is not an operation SegLRP explains (it explains {SUPPORTED})", at(node))),
        };
        self.output(node, v);
        Ok(())
    }

    fn unary(&mut self, node: &OnnxNode, op: Op) -> Result<Value, String> {
        let x = self.input(node, &node.inputs()[0])?;
        let c = self.channels[x];
        Ok(Value::Node(self.push(node.name(), op, vec![x], c)))
    }
}

/// Conv padding as one number per axis (PyTorch's exports are symmetric).
fn symmetric(node: &OnnxNode, p: &PaddingConfig3d) -> Result<[usize; 3], String> {
    if p.is_asymmetric() {
        return Err(format!("{}: asymmetric padding {p}", at(node)));
    }
    let (d, h, w, ..) = p.as_tuple();
    Ok([d, h, w])
}

/// Keeps only the nodes the output depends on (deep-supervision outputs and the like go),
/// renumbered.
fn prune(nodes: Vec<Node>, output: usize) -> (Vec<Node>, usize) {
    let mut needed = vec![false; nodes.len()];
    needed[0] = true;
    needed[output] = true;
    for i in (0..=output).rev() {
        if needed[i] {
            for &j in &nodes[i].inputs {
                needed[j] = true;
            }
        }
    }
    let mut index = vec![usize::MAX; nodes.len()];
    let mut kept = Vec::new();
    for (i, mut node) in nodes.into_iter().enumerate().take(output + 1) {
        if needed[i] {
            node.inputs = node.inputs.iter().map(|&j| index[j]).collect();
            index[i] = kept.len();
            kept.push(node);
        }
    }
    (kept, index[output])
}

/// A loaded ONNX model.
pub struct Onnx {
    pub graph: Graph,
    pub card: ModelCard,
}

/// The network of the ONNX file `bytes` (named `source`; its weights inside it) on `device`;
/// `meta`: a MONAI bundle's metadata for the channel and class names, if there is one.
pub fn from_bytes(
    bytes: &[u8],
    source: &str,
    meta: Option<&serde_json::Value>,
    device: &Device,
) -> Result<Onnx, String> {
    let parsed = onnx_ir::OnnxGraphBuilder::new()
        .parse_bytes(bytes)
        .map_err(|e| format!("{source}: not an ONNX model onnx-ir can read: {e}"))?;
    from_parsed(&parsed, source, meta, device)
}

fn from_parsed(
    parsed: &onnx_ir::OnnxGraph,
    source: &str,
    meta: Option<&serde_json::Value>,
    device: &Device,
) -> Result<Onnx, String> {
    let input = parsed.inputs.first().ok_or_else(|| format!("{source}: the ONNX graph has no input"))?;
    let shape = match &input.ty {
        ArgType::Tensor(t) if t.rank == 5 => t.static_shape.clone().unwrap_or_default(),
        ty => return Err(format!("{source}: the input \"{}\" is {ty}, not a 5D tensor [1, C, D, H, W]", input.name)),
    };
    let in_channels = shape.get(1).copied().flatten().ok_or_else(|| {
        format!("{source}: the input's channel count is not fixed in the export; export with a fixed input shape")
    })?;
    let mut readers: HashMap<String, usize> = HashMap::new();
    for node in &parsed.nodes {
        for arg in node.inputs() {
            *readers.entry(arg.name.clone()).or_default() += 1;
        }
    }
    for out in &parsed.outputs {
        *readers.entry(out.name.clone()).or_default() += 1;
    }
    let mut im = Importer {
        nodes: Vec::new(),
        values: HashMap::new(),
        readers,
        channels: Vec::new(),
        finals: Vec::new(),
        device,
    };
    im.push("input", Op::Input, vec![], in_channels);
    im.values.insert(input.name.clone(), Value::Node(0));
    for node in &parsed.nodes {
        im.node(node).map_err(|e| format!("{source}: {e}"))?;
    }
    let out = parsed.outputs.first().ok_or_else(|| format!("{source}: the ONNX graph has no output"))?;
    let output = match im.values.get(&out.name) {
        Some(Value::Node(i)) => *i,
        _ => return Err(format!("{source}: the output \"{}\" is not computed by supported nodes", out.name)),
    };
    if let Some((name, _)) = im.finals.iter().find(|(_, x)| *x != output) {
        return Err(format!(
            "{source}: node \"{name}\" (an output activation) sits inside the network, not on its output"
        ));
    }
    let (nodes, output) = prune(im.nodes, output);
    let graph = Graph::from_nodes(nodes, output, in_channels).map_err(|e| format!("{source}: {e}"))?;
    let names = |io: &str, n: usize, what: &str| super::monai::names(meta, io, "channel_def", n, what);
    let [ad, ah, aw] = graph.align();
    let [rd, rh, rw] = graph.receptive_radius();
    let dims: Vec<String> = shape.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
    let card = ModelCard {
        architecture: format!(
            "ONNX graph ({} nodes explained, exported for input [{}])",
            graph.nodes.len() - 1,
            dims.join(", ")
        ),
        parameters: graph.parameters(),
        channels: names("inputs", graph.in_channels, "channel")
            .into_iter()
            .map(|name| Channel {
                name,
                normalisation: Normalisation::Unknown { note: "an ONNX file does not state it".into() },
            })
            .collect(),
        classes: names("outputs", graph.classes, "class"),
        target_spacing: None,
        patch_size: None,
        align: [aw, ah, ad],
        receptive_radius: [rw, rh, rd],
        sources: vec![source.to_string()],
        inference: None,
    };
    Ok(Onnx { graph, card })
}

/// The ONNX model at `path` (its weights inside it or in the external data files beside it),
/// with the channel and class names of a MONAI bundle's `configs/metadata.json` (the file in
/// `models/`) or a `metadata.json` beside it.
pub fn load(path: &Path, device: &Device) -> Result<Onnx, String> {
    let source = path.display().to_string();
    let parsed = onnx_ir::OnnxGraphBuilder::new()
        .parse_file(path)
        .map_err(|e| format!("{source}: not an ONNX model onnx-ir can read: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let meta_path = [dir.join("metadata.json"), dir.join("../configs/metadata.json")].into_iter().find(|p| p.is_file());
    let meta = match &meta_path {
        Some(p) => Some(super::monai::read_json(p)?),
        None => None,
    };
    let mut m = from_parsed(&parsed, &source, meta.as_ref(), device)?;
    if let Some(p) = meta_path {
        m.card.sources.push(p.display().to_string());
    }
    Ok(m)
}
