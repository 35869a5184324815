//! A configurable 3D U-Net after Çiçek et al. (2016): `levels` resolutions, `blocks`
//! conv-norm-ReLU blocks per level and side, max-pooling or strided-conv down, transposed-conv
//! (or nearest/trilinear up-sampling + 1×1×1 conv) up, channel-concatenation skips and a 1×1×1
//! head.
//!
//! ```text
//! level 0:  x ─ block…block ─────────────────────────────────── cat ─ block…block ─ head
//! level 1:            └ down ─ block…block ──── cat ─ block… ─ up ┘
//! level 2:                        └ down ─ block…block ─ up ┘
//! ```
//! Parameters are named as in the PyTorch twin (`tests/twin.py`): `encoder.{level}.{block}.conv`,
//! `encoder.{level}.{block}.norm`, `ups.{i}` (`ups.{i}.1` for up-sample + conv),
//! `decoder.{i}.{block}.conv|norm` (i = 0 is the
//! deepest decoder level) and `head`. The forward pass keeps every layer's input, because LRP
//! needs them.

use burn::module::Param;
use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use super::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use crate::ops::pool::max_pool3d;
use crate::ops::upsample::upsample2;
use crate::rng::SplitMix;

pub const IN_CHANNELS: usize = 6;
pub const CLASSES: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    None,
    /// Running statistics (inference); merged into the preceding conv before LRP.
    Batch,
    /// Statistics of the current input; frozen and merged into the preceding conv before LRP.
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Down {
    /// 2×2×2 max-pooling, stride 2.
    MaxPool,
    /// A conv-norm-ReLU block with a 2×2×2 kernel and stride 2 (channels unchanged).
    StridedConv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Up {
    /// 2×2×2 transposed conv, stride 2.
    #[default]
    TransposedConv,
    /// ×2 nearest-neighbour up-sampling, then a 1×1×1 conv.
    Nearest,
    /// ×2 trilinear up-sampling (`align_corners=False`), then a 1×1×1 conv.
    Trilinear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    /// Slope 0.01 below 0, PyTorch's default.
    LeakyRelu,
}

/// The architecture; stored as JSON next to the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub classes: usize,
    /// Resolutions, ≥ 1 (1 = no down-sampling).
    pub levels: usize,
    /// Channels at level 0; doubled at each level down.
    pub base_channels: usize,
    /// Conv-norm-ReLU blocks per level on each side, ≥ 1.
    pub blocks: usize,
    pub norm: NormKind,
    pub down: Down,
    #[serde(default)]
    pub up: Up,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f32,
}

fn default_norm_eps() -> f32 {
    1e-5
}

impl UNetConfig {
    /// The small test network: two levels, 8 channels, one block, no norm, max-pooling.
    pub fn small() -> UNetConfig {
        UNetConfig {
            in_channels: IN_CHANNELS,
            classes: CLASSES,
            levels: 2,
            base_channels: 8,
            blocks: 1,
            norm: NormKind::None,
            down: Down::MaxPool,
            up: Up::TransposedConv,
            activation: Activation::Relu,
            norm_eps: 1e-5,
        }
    }

    pub fn channels(&self, level: usize) -> usize {
        self.base_channels << level
    }

    /// Input sides must be multiples of this.
    pub fn align(&self) -> usize {
        1 << (self.levels - 1)
    }

    pub fn validate(&self) -> Result<(), String> {
        let ok = self.in_channels > 0
            && self.classes > 0
            && (1..=6).contains(&self.levels)
            && (1..=256).contains(&self.base_channels)
            && (1..=4).contains(&self.blocks)
            && self.norm_eps > 0.0;
        if ok {
            Ok(())
        } else {
            Err(format!("unusable U-Net configuration: {self:?} (levels 1–6, base channels 1–256, blocks 1–4)"))
        }
    }
}

/// Batch or instance norm, with an affine transform (PyTorch `affine=True`).
#[derive(Module, Debug)]
pub struct Norm3d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    /// Used by batch norm only (instance norm keeps them at 0 and 1).
    pub running_mean: Param<Tensor<1>>,
    pub running_var: Param<Tensor<1>>,
    #[module(skip)]
    pub kind: NormKind,
    #[module(skip)]
    pub eps: f32,
}

impl Norm3d {
    /// Per-channel `(mean, var)` this layer normalises `z` with: the running statistics for
    /// batch norm, `z`'s own per-channel statistics (biased variance) for instance norm.
    /// Shapes `[C]`; instance norm needs batch 1 here.
    pub fn statistics(&self, z: &Tensor<5>) -> (Tensor<1>, Tensor<1>) {
        match self.kind {
            NormKind::Instance => {
                let [n, c, d, h, w] = z.dims();
                assert_eq!(n, 1, "instance-norm statistics are per volume: batch 1");
                let flat = z.clone().reshape([c, d * h * w]);
                let mean = flat.clone().mean_dim(1);
                let var = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
                (mean.reshape([c]), var.reshape([c]))
            }
            _ => (self.running_mean.val(), self.running_var.val()),
        }
    }

    /// `scale = γ / √(var + eps)` and `shift = β − mean·scale`: the norm as `z·scale + shift`.
    pub fn affine(&self, z: &Tensor<5>) -> (Tensor<1>, Tensor<1>) {
        let (mean, var) = self.statistics(z);
        let scale = self.weight.val() / (var + self.eps).sqrt();
        let shift = self.bias.val() - mean * scale.clone();
        (scale, shift)
    }

    pub fn forward(&self, z: Tensor<5>) -> Tensor<5> {
        let c = z.dims()[1];
        if self.kind == NormKind::Instance && z.dims()[0] > 1 {
            // Per volume of the batch.
            let parts: Vec<Tensor<5>> = z.split(1, 0).into_iter().map(|v| self.forward(v)).collect();
            return Tensor::cat(parts, 0);
        }
        let (scale, shift) = self.affine(&z);
        z * scale.reshape([1, c, 1, 1, 1]) + shift.reshape([1, c, 1, 1, 1])
    }
}

/// Conv, optional norm, ReLU (or leaky ReLU).
#[derive(Module, Debug)]
pub struct Block {
    pub conv: Conv3d,
    pub norm: Option<Norm3d>,
    #[module(skip)]
    pub activation: Activation,
}

/// One up-sampling step: a transposed conv, or ×2 up-sampling followed by a 1×1×1 conv.
#[derive(Module, Debug)]
pub struct UpLayer {
    pub transposed: Option<ConvTranspose3d>,
    pub conv: Option<Conv3d>,
    #[module(skip)]
    pub mode: Up,
}

impl UpLayer {
    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match (&self.transposed, &self.conv, self.mode) {
            (Some(t), _, _) => t.forward(x),
            (None, Some(conv), Up::Nearest | Up::Trilinear) => conv.forward(upsample2(x, self.upsample_mode())),
            _ => unreachable!("an up layer has a transposed conv or an up-sampling conv"),
        }
    }

    pub fn upsample_mode(&self) -> crate::ops::upsample::Mode {
        if self.mode == Up::Trilinear {
            crate::ops::upsample::Mode::Trilinear
        } else {
            crate::ops::upsample::Mode::Nearest
        }
    }
}

impl Block {
    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let conv_out = crate::ops::conv::forward(&self.conv, x);
        let normed = match &self.norm {
            Some(n) => n.forward(conv_out),
            None => conv_out,
        };
        match self.activation {
            Activation::Relu => burn::tensor::activation::relu(normed),
            Activation::LeakyRelu => burn::tensor::activation::leaky_relu(normed, 0.01),
        }
    }
}

#[derive(Module, Debug)]
pub struct UNet {
    /// `encoder[level][block]`; for `Down::StridedConv`, block 0 of levels ≥ 1 is the down conv.
    pub encoder: Vec<Vec<Block>>,
    /// `ups[i]` brings level `levels − 1 − i` up to level `levels − 2 − i`.
    pub ups: Vec<UpLayer>,
    /// `decoder[i]` works at level `levels − 2 − i`.
    pub decoder: Vec<Vec<Block>>,
    pub head: Conv3d,
    #[module(skip)]
    pub config: UNetConfig,
}

fn uniform(rng: &mut SplitMix, shape: Vec<usize>, bound: f32, device: &Device) -> Tensor<1> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.symmetric(bound)).collect();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

fn conv3d(
    rng: &mut SplitMix,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    bias_scale: f32,
    device: &Device,
) -> Conv3d {
    let a = (6.0 / (cin * k * k * k) as f32).sqrt();
    let pad = if stride == 1 { k / 2 } else { 0 };
    Conv3d {
        weight: Param::from_tensor(uniform(rng, vec![cout, cin, k, k, k], a, device).reshape([cout, cin, k, k, k])),
        bias: Some(Param::from_tensor(uniform(rng, vec![cout], bias_scale, device))),
        stride: [stride; 3],
        kernel_size: [k; 3],
        dilation: [1; 3],
        groups: 1,
        padding: PaddingConfig3d::Explicit(pad, pad, pad),
    }
}

fn norm3d(rng: &mut SplitMix, c: usize, kind: NormKind, eps: f32, device: &Device) -> Option<Norm3d> {
    if kind == NormKind::None {
        return None;
    }
    let around = |rng: &mut SplitMix, centre: f32, spread: f32| {
        Param::from_tensor(uniform(rng, vec![c], spread, device) + centre)
    };
    let (mean, var) = if kind == NormKind::Batch {
        (around(rng, 0.0, 0.3), around(rng, 1.0, 0.5))
    } else {
        (Param::from_tensor(Tensor::zeros([c], device)), Param::from_tensor(Tensor::ones([c], device)))
    };
    Some(Norm3d {
        weight: around(rng, 1.0, 0.3),
        bias: around(rng, 0.0, 0.2),
        running_mean: mean,
        running_var: var,
        kind,
        eps,
    })
}

impl UNet {
    /// Deterministic weights from `seed` (identical on every platform and backend): He-uniform
    /// convs, biases uniform in ±`bias_scale` (0 gives a bias-free net, for which LRP-0
    /// conserves relevance), norms with random affine and running statistics.
    pub fn seeded(config: &UNetConfig, seed: u64, bias_scale: f32, device: &Device) -> UNet {
        config.validate().expect("a valid configuration");
        let mut rng = SplitMix::new(seed);
        let c = |l| config.channels(l);
        let block = |rng: &mut SplitMix, cin, cout, k, stride| Block {
            conv: conv3d(rng, cin, cout, k, stride, bias_scale, device),
            norm: norm3d(rng, cout, config.norm, config.norm_eps, device),
            activation: config.activation,
        };
        let mut encoder = Vec::new();
        for l in 0..config.levels {
            let mut blocks = Vec::new();
            let mut cin = if l == 0 { config.in_channels } else { c(l - 1) };
            if l > 0 && config.down == Down::StridedConv {
                blocks.push(block(&mut rng, cin, cin, 2, 2));
            }
            for _ in 0..config.blocks {
                blocks.push(block(&mut rng, cin, c(l), 3, 1));
                cin = c(l);
            }
            encoder.push(blocks);
        }
        let mut ups = Vec::new();
        let mut decoder = Vec::new();
        for l in (0..config.levels - 1).rev() {
            ups.push(match config.up {
                Up::TransposedConv => {
                    let a = (6.0 / c(l + 1) as f32).sqrt();
                    UpLayer {
                        transposed: Some(ConvTranspose3d {
                            // PyTorch/burn layout for transposed convs: [in, out, k, k, k]
                            weight: Param::from_tensor(
                                uniform(&mut rng, vec![c(l + 1), c(l), 2, 2, 2], a, device).reshape([
                                    c(l + 1),
                                    c(l),
                                    2,
                                    2,
                                    2,
                                ]),
                            ),
                            bias: Some(Param::from_tensor(uniform(&mut rng, vec![c(l)], bias_scale, device))),
                            stride: [2; 3],
                            kernel_size: [2; 3],
                            dilation: [1; 3],
                            groups: 1,
                            padding: [0; 3],
                            padding_out: [0; 3],
                            channels: [c(l + 1), c(l)],
                        }),
                        conv: None,
                        mode: Up::TransposedConv,
                    }
                }
                mode => UpLayer {
                    transposed: None,
                    conv: Some(conv3d(&mut rng, c(l + 1), c(l), 1, 1, bias_scale, device)),
                    mode,
                },
            });
            let mut blocks = Vec::new();
            let mut cin = 2 * c(l);
            for _ in 0..config.blocks {
                blocks.push(block(&mut rng, cin, c(l), 3, 1));
                cin = c(l);
            }
            decoder.push(blocks);
        }
        let head = conv3d(&mut rng, c(0), config.classes, 1, 1, bias_scale, device);
        UNet { encoder, ups, decoder, head, config: config.clone() }
    }

    /// The logits, keeping only the skip connections on the way (training; the engine runs
    /// the network as a [`Graph`]: [`graph`]).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let cfg = &self.config;
        let block = |h: Tensor<5>, b: &Block| b.forward(h);
        let mut skips: Vec<Tensor<5>> = Vec::new();
        let mut h = x;
        for (l, blocks) in self.encoder.iter().enumerate() {
            if l > 0 && cfg.down == Down::MaxPool {
                h = max_pool3d(h, [2; 3]);
            }
            h = blocks.iter().fold(h, block);
            skips.push(h.clone());
        }
        skips.pop();
        for (up, blocks) in self.ups.iter().zip(&self.decoder) {
            let u = up.forward(h);
            let skip = skips.pop().expect("one skip per level");
            h = blocks.iter().fold(Tensor::cat(vec![skip, u], 1), block);
        }
        self.head.forward(h)
    }
}

// The network as a graph (`model::graph`) for the engine: node names are its parameter names
// (`encoder.0.0.conv`, `ups.1`, `head`), so that custom rules address layers by the names of the
// safetensors file.

fn conv(c: &Conv3d) -> ConvSpec {
    ConvSpec {
        weight: c.weight.val(),
        bias: c.bias.as_ref().map(|b| b.val()),
        stride: c.stride,
        padding: crate::ops::conv::conv_padding(c),
        output_padding: [0; 3],
        transposed: false,
    }
}

fn transposed(c: &ConvTranspose3d) -> ConvSpec {
    ConvSpec {
        weight: c.weight.val(),
        bias: c.bias.as_ref().map(|b| b.val()),
        stride: c.stride,
        padding: c.padding,
        output_padding: c.padding_out,
        transposed: true,
    }
}

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name, op, inputs });
        self.nodes.len() - 1
    }

    fn block(&mut self, prefix: String, b: &Block, x: usize) -> usize {
        let mut h = self.push(format!("{prefix}.conv"), Op::Conv(conv(&b.conv)), vec![x]);
        if let Some(n) = &b.norm {
            let statistics = match n.kind {
                NormKind::Instance => Statistics::Instance,
                _ => Statistics::Running { mean: n.running_mean.val(), var: n.running_var.val() },
            };
            let spec = NormSpec {
                statistics,
                weight: Some(n.weight.val()),
                bias: Some(n.bias.val()),
                eps: n.eps,
                channels: n.weight.val().dims()[0],
            };
            h = self.push(format!("{prefix}.norm"), Op::Norm(spec), vec![h]);
        }
        let act = match b.activation {
            Activation::Relu => Op::Relu,
            Activation::LeakyRelu => Op::LeakyRelu(0.01),
        };
        self.push(format!("{prefix}.act"), act, vec![h])
    }
}

/// The U-Net as a graph: the same forward pass, node by node.
pub fn graph(net: &UNet) -> Graph {
    let cfg = &net.config;
    let mut b = Builder { nodes: vec![Node { name: "input".into(), op: Op::Input, inputs: vec![] }] };
    let mut h = 0;
    let mut skips = Vec::new();
    for (l, blocks) in net.encoder.iter().enumerate() {
        if l > 0 && cfg.down == Down::MaxPool {
            h = b.push(format!("encoder.{l}.pool"), Op::MaxPool([2; 3]), vec![h]);
        }
        for (i, block) in blocks.iter().enumerate() {
            h = b.block(format!("encoder.{l}.{i}"), block, h);
        }
        skips.push(h);
    }
    skips.pop();
    for (i, (up, blocks)) in net.ups.iter().zip(&net.decoder).enumerate() {
        h = match (&up.transposed, &up.conv) {
            (Some(t), _) => b.push(format!("ups.{i}"), Op::Conv(transposed(t)), vec![h]),
            (None, Some(c)) => {
                let mode = if up.mode == Up::Trilinear {
                    crate::ops::upsample::Mode::Trilinear
                } else {
                    crate::ops::upsample::Mode::Nearest
                };
                let u = b.push(format!("ups.{i}.up"), Op::Upsample(mode), vec![h]);
                b.push(format!("ups.{i}"), Op::Conv(conv(c)), vec![u])
            }
            _ => unreachable!("an up layer has a transposed conv or an up-sampling conv"),
        };
        let skip = skips.pop().expect("one skip per level");
        h = b.push(format!("decoder.{i}.cat"), Op::Concat, vec![skip, h]);
        for (j, block) in blocks.iter().enumerate() {
            h = b.block(format!("decoder.{i}.{j}"), block, h);
        }
    }
    let output = b.push("head".into(), Op::Conv(conv(&net.head)), vec![h]);
    Graph { nodes: b.nodes, output, in_channels: cfg.in_channels, classes: cfg.classes }
}

impl From<&UNet> for Graph {
    fn from(net: &UNet) -> Graph {
        graph(net)
    }
}
