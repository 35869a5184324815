//! MONAI networks: a state dict (`model.pt`, `.pth` or `.safetensors`) and the `network_def`
//! that builds it, as a MONAI bundle holds them (`configs/inference.json`, `models/model.pt`,
//! `configs/metadata.json` for the channel and class names), or a folder with `network.json`
//! and the weights side by side.
//!
//! `BasicUNet` is built: two conv–norm–activation blocks per level (MONAI's `Convolution` with its
//! `ADN` in the default order norm, dropout, activation), 2×2×2 max-pooling down, transposed
//! convs up (`upsample="deconv"`), the skip concatenated before the up-sampled features, a 1×1×1
//! head. `SegResNet` is built: pre-activation residual blocks with group norm, strided-conv
//! down-sampling, trilinear (or transposed-conv) up-sampling added to the encoder's features.
//! `UNet` is built: strided-conv (or residual-unit) levels joined by concatenation, transposed
//! convs up, PReLU and instance norm by default.
//! `DynUNet` is built: residual or basic blocks per stage with any per-axis kernels and strides,
//! transposed convs up (deep-supervision heads ignored).
//! Channel counts are read from the weights' shapes. Node names are the state dict's
//! (`down_1.convs.conv_0.conv`).

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::Value;

use super::card::{Channel, ModelCard, Normalisation};
use super::checkpoint::Weights;
use super::files::ModelFiles;
use super::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};

/// The network definition, the weights and the metadata (if any) of a MONAI model folder, as
/// paths inside it: a bundle (`configs/`, `models/`), `network.json` beside the weights, or a
/// bundle's files chosen one by one (`inference.json`, `model.pt`, `metadata.json`).
fn files(files: &ModelFiles) -> Option<(String, String, Option<String>)> {
    let weights = |dir: &str| {
        ["model.pt", "model.pth", "model.safetensors"].iter().map(|n| format!("{dir}{n}")).find(|p| files.has(p))
    };
    let found = |def: &str, dir: &str, meta: &str| {
        Some((def.to_string(), weights(dir)?, Some(meta.to_string()).filter(|m| files.has(m))))
    };
    if files.has("configs/inference.json") {
        return found("configs/inference.json", "models/", "configs/metadata.json");
    }
    let def = ["network.json", "inference.json"].into_iter().find(|d| files.has(d))?;
    found(def, "", "metadata.json")
}

/// Whether `files` hold a MONAI model.
pub fn is_model(files: &ModelFiles) -> bool {
    self::files(files).is_some()
}

pub(super) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

/// A MONAI layer argument such as `act`: a name, or `[name, {kwargs}]`.
fn named(v: Option<&Value>, default: (&str, Value)) -> (String, Value) {
    match v {
        Some(Value::String(s)) => (s.to_lowercase(), Value::Null),
        Some(Value::Array(a)) if !a.is_empty() => {
            (a[0].as_str().unwrap_or("").to_lowercase(), a.get(1).cloned().unwrap_or(Value::Null))
        }
        _ => (default.0.to_string(), default.1),
    }
}

struct Builder<'a> {
    nodes: Vec<Node>,
    weights: &'a Weights,
    device: &'a Device,
    norm: (String, Value),
    act: Op,
    /// MONAI's `adn_ordering`: the order of norm (`N`), dropout (`D`) and activation (`A`)
    /// after each conv.
    adn: String,
}

impl<'a> Builder<'a> {
    /// A builder for a 3D network (refused otherwise) whose graph starts at its input.
    fn new(
        def: &Value,
        weights: &'a Weights,
        device: &'a Device,
        norm: (String, Value),
        act: Op,
    ) -> Result<Self, String> {
        if def.get("spatial_dims").and_then(Value::as_u64).unwrap_or(3) != 3 {
            return Err("network_def: only 3D networks (spatial_dims 3) are explained".into());
        }
        let adn = def.get("adn_ordering").and_then(Value::as_str).unwrap_or("NDA").to_uppercase();
        if adn.chars().any(|c| !"NDA".contains(c)) {
            return Err(format!("network_def: adn_ordering \"{adn}\" is not made of N, D and A"));
        }
        let nodes = vec![Node { name: "input".into(), op: Op::Input, inputs: vec![] }];
        Ok(Builder { nodes, weights, device, norm, act, adn })
    }

    /// The graph ending at `output`, checked.
    fn finish(self, output: usize, in_channels: usize) -> Result<Graph, String> {
        Graph::from_nodes(self.nodes, output, in_channels)
    }
    fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name: name.to_string(), op, inputs });
        self.nodes.len() - 1
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, String> {
        self.weights.shape(name).map(<[usize]>::to_vec).ok_or_else(|| {
            format!(
                "{} has no tensor \"{name}\" that the network needs; do definition and weights belong together?",
                self.weights.source
            )
        })
    }

    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, String> {
        let t = self.weights.get(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.values.clone(), shape), self.device))
    }

    fn conv(&mut self, name: &str, x: usize, transposed: bool, padding: usize) -> Result<(usize, usize), String> {
        self.strided(name, x, transposed, padding, 1)
    }

    /// A conv (stride `stride`) or a transposed conv (stride = kernel) called `name`, its channel
    /// counts from its weights; returns the node and its output channels.
    fn strided(
        &mut self,
        name: &str,
        x: usize,
        transposed: bool,
        padding: usize,
        stride: usize,
    ) -> Result<(usize, usize), String> {
        let s = self.shape(&format!("{name}.weight"))?;
        let [a, b, k0, k1, k2]: [usize; 5] =
            s.as_slice().try_into().map_err(|_| format!("\"{name}\" is not a 3D conv"))?;
        let weight = self.tensor(&format!("{name}.weight"), [a, b, k0, k1, k2])?;
        let out = if transposed { b } else { a };
        let bias = match self.weights.shape(&format!("{name}.bias")) {
            Some(_) => Some(self.tensor(&format!("{name}.bias"), [out])?),
            None => None,
        };
        let stride = if transposed { [k0, k1, k2] } else { [stride; 3] };
        let spec = ConvSpec { weight, bias, stride, padding: [padding; 3], output_padding: [0; 3], transposed };
        Ok((self.push(name, Op::Conv(spec), vec![x]), out))
    }

    /// A conv called `name` with the given kernel, stride and padding (its channels from its
    /// weights; a bias if the weights have one); returns the node and its output channels.
    fn conv_with(
        &mut self,
        name: &str,
        x: usize,
        k: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Result<(usize, usize), String> {
        self.conv_checked(name, x, k, stride, padding, None)
    }

    /// [`Builder::conv_with`], or a transposed conv with `output_padding` when that is given.
    fn conv_checked(
        &mut self,
        name: &str,
        x: usize,
        k: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        output_padding: Option<[usize; 3]>,
    ) -> Result<(usize, usize), String> {
        let s = self.shape(&format!("{name}.weight"))?;
        if s.len() != 5 || s[2..] != k {
            return Err(format!(
                "{}: \"{name}\" has kernel {:?}, the network_def says {k:?}",
                self.weights.source,
                &s[2.min(s.len())..]
            ));
        }
        let transposed = output_padding.is_some();
        let weight = self.tensor(&format!("{name}.weight"), [s[0], s[1], k[0], k[1], k[2]])?;
        let out = s[usize::from(transposed)];
        let bias = match self.weights.shape(&format!("{name}.bias")) {
            Some(_) => Some(self.tensor(&format!("{name}.bias"), [out])?),
            None => None,
        };
        let output_padding = output_padding.unwrap_or([0; 3]);
        let spec = ConvSpec { weight, bias, stride, padding, output_padding, transposed };
        Ok((self.push(name, Op::Conv(spec), vec![x]), out))
    }

    /// The network's norm at `n` (parameters `n.weight`, …) on `c` channels of node `x`.
    fn norm(&mut self, n: &str, x: usize, c: usize) -> Result<usize, String> {
        let n = n.to_string();
        let affine = self.weights.shape(&format!("{n}.weight")).is_some();
        let (weight, bias) = if affine {
            (Some(self.tensor(&format!("{n}.weight"), [c])?), Some(self.tensor(&format!("{n}.bias"), [c])?))
        } else {
            (None, None)
        };
        let eps = self.norm.1.get("eps").and_then(Value::as_f64).unwrap_or(1e-5) as f32;
        let statistics = match self.norm.0.as_str() {
            "instance" => Some(Statistics::Instance),
            "batch" => Some(Statistics::Running {
                mean: self.tensor(&format!("{n}.running_mean"), [c])?,
                var: self.tensor(&format!("{n}.running_var"), [c])?,
            }),
            "group" => {
                Some(Statistics::Group(self.norm.1.get("num_groups").and_then(Value::as_u64).unwrap_or(1) as usize))
            }
            "" | "none" => None,
            other => {
                return Err(format!("network_def: the norm \"{other}\" is not supported (instance, batch, group)"))
            }
        };
        Ok(match statistics {
            Some(statistics) => {
                self.push(&n, Op::Norm(NormSpec { statistics, weight, bias, eps, channels: c }), vec![x])
            }
            None => x,
        })
    }

    /// The network's activation called `name` on node `x` (a PReLU's slopes from `name.weight`).
    fn activation(&mut self, name: &str, x: usize) -> Result<usize, String> {
        let act = match &self.act {
            Op::PRelu(_) => {
                let a = format!("{name}.weight");
                let n = self.shape(&a)?.first().copied().unwrap_or(1);
                Op::PRelu(self.tensor(&a, [n])?)
            }
            op => op.clone(),
        };
        Ok(self.push(name, act, vec![x]))
    }

    /// MONAI's `ADN` at `p` on `c` channels of node `x`, in the network's ordering (dropout is the
    /// identity at inference).
    fn adn(&mut self, p: &str, x: usize, c: usize) -> Result<usize, String> {
        let mut h = x;
        for step in self.adn.clone().chars() {
            h = match step {
                'N' => self.norm(&format!("{p}.N"), h, c)?,
                'A' => self.activation(&format!("{p}.A"), h)?,
                _ => h,
            };
        }
        Ok(h)
    }

    /// MONAI's `Convolution` at `p` with a 3×3×3 kernel: conv, then its ADN.
    fn convolution(&mut self, p: &str, x: usize) -> Result<usize, String> {
        let (h, c) = self.conv(&format!("{p}.conv"), x, false, 1)?;
        self.adn(&format!("{p}.adn"), h, c)
    }

    fn two_conv(&mut self, p: &str, x: usize) -> Result<usize, String> {
        let h = self.convolution(&format!("{p}.conv_0"), x)?;
        self.convolution(&format!("{p}.conv_1"), h)
    }
}

fn basic_unet(def: &Value, weights: &Weights, device: &Device) -> Result<Graph, String> {
    let upsample = def.get("upsample").and_then(Value::as_str).unwrap_or("deconv");
    if upsample != "deconv" {
        return Err(format!("network_def: BasicUNet's upsample \"{upsample}\" is not supported (deconv)"));
    }
    let act = activation(def.get("act"), ("leakyrelu", serde_json::json!({"negative_slope": 0.1})), device)?;
    let norm = named(def.get("norm"), ("instance", serde_json::json!({"affine": true})));
    let mut b = Builder::new(def, weights, device, norm, act)?;
    let in_channels = b.shape("conv_0.conv_0.conv.weight")?[1];
    let x0 = b.two_conv("conv_0", 0)?;
    let mut skips = vec![x0];
    for level in 1..=4 {
        let pooled =
            b.push(&format!("down_{level}.max_pooling"), Op::MaxPool([2; 3]), vec![*skips.last().expect("a level")]);
        skips.push(b.two_conv(&format!("down_{level}.convs"), pooled)?);
    }
    let mut h = skips.pop().expect("the deepest level");
    for level in (1..=4).rev() {
        let p = format!("upcat_{level}");
        let (up, _) = b.conv(&format!("{p}.upsample.deconv"), h, true, 0)?;
        let skip = skips.pop().expect("a skip per level");
        // UpCat: torch.cat([x_e, x_0]): the encoder's features first.
        let cat = b.push(&format!("{p}.cat"), Op::Concat, vec![skip, up]);
        h = b.two_conv(&format!("{p}.convs"), cat)?;
    }
    let (head, _) = b.conv("final_conv", h, false, 0)?;
    b.finish(head, in_channels)
}

/// The activation a network_def's entry names (`default`: MONAI's for the network).
fn activation(entry: Option<&Value>, default: (&str, Value), device: &Device) -> Result<Op, String> {
    let (act, kwargs) = named(entry, default);
    Ok(match act.as_str() {
        "leakyrelu" => Op::LeakyRelu(kwargs.get("negative_slope").and_then(Value::as_f64).unwrap_or(0.01) as f32),
        "relu" => Op::Relu,
        "prelu" => Op::PRelu(Tensor::zeros([1], device)),
        other => {
            return Err(format!("network_def: the activation \"{other}\" is not supported (LeakyReLU, ReLU, PReLU)"))
        }
    })
}

/// SegResNet (Myronenko 2018): pre-activation residual blocks (norm, act, conv, norm, act,
/// conv, plus the block's input), strided-conv down-sampling, and up-sampling by a 1×1×1 conv and
/// trilinear interpolation (or a transposed conv) added to the encoder's features. A norm that
/// follows a conv is merged into it; the pre-activation norms stay frozen per-channel affines.
fn seg_res_net(def: &Value, weights: &Weights, device: &Device) -> Result<Graph, String> {
    let mode = def.get("upsample_mode").and_then(Value::as_str).unwrap_or("nontrainable");
    if mode != "nontrainable" && mode != "deconv" {
        return Err(format!(
            "network_def: SegResNet's upsample_mode \"{mode}\" is not supported (nontrainable, deconv)"
        ));
    }
    if def.get("use_conv_final").and_then(Value::as_bool) == Some(false) {
        return Err("network_def: SegResNet without its final conv (use_conv_final false) is not supported".into());
    }
    let act = activation(def.get("act"), ("relu", Value::Null), device)?;
    let groups = def.get("num_groups").and_then(Value::as_u64).unwrap_or(8);
    let norm = named(def.get("norm"), ("group", serde_json::json!({ "num_groups": groups })));
    let mut b = Builder::new(def, weights, device, norm, act)?;
    let in_channels = b.shape("convInit.conv.weight")?[1];
    let blocks = |key: &str, default: &[usize]| -> Vec<usize> {
        def.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|v| v as usize).collect())
            .unwrap_or_else(|| default.to_vec())
    };
    let (down, up) = (blocks("blocks_down", &[1, 2, 2, 4]), blocks("blocks_up", &[1, 1, 1]));
    if up.len() + 1 != down.len() {
        return Err("network_def: SegResNet needs one more blocks_down entry than blocks_up".into());
    }
    let (mut h, mut c) = b.conv("convInit.conv", 0, false, 1)?;
    let mut skips = Vec::new();
    for (i, n) in down.iter().enumerate() {
        if i > 0 {
            (h, c) = b.strided(&format!("down_layers.{i}.0.conv"), h, false, 1, 2)?;
        }
        for j in 1..=*n {
            h = res_block(&mut b, &format!("down_layers.{i}.{j}"), h, c)?;
        }
        skips.push(h);
    }
    skips.pop();
    for (i, n) in up.iter().enumerate() {
        (h, c) = b.conv(&format!("up_samples.{i}.0.conv"), h, false, 0)?;
        h = if mode == "deconv" {
            b.conv(&format!("up_samples.{i}.1.deconv"), h, true, 0)?.0
        } else {
            b.push(&format!("up_samples.{i}.1"), Op::Upsample(crate::ops::upsample::Mode::Trilinear), vec![h])
        };
        let skip = skips.pop().expect("a skip per up level");
        h = b.push(&format!("up_samples.{i}.add"), Op::Add, vec![h, skip]);
        for j in 0..*n {
            h = res_block(&mut b, &format!("up_layers.{i}.{j}"), h, c)?;
        }
    }
    h = b.norm("conv_final.0", h, c)?;
    let act = b.act.clone();
    h = b.push("conv_final.1", act, vec![h]);
    let (head, _) = b.conv("conv_final.2.conv", h, false, 0)?;
    b.finish(head, in_channels)
}

/// SegResNet's `ResBlock` at `p` on node `x` of `c` channels.
fn res_block(b: &mut Builder, p: &str, x: usize, c: usize) -> Result<usize, String> {
    let act = b.act.clone();
    let h = b.norm(&format!("{p}.norm1"), x, c)?;
    let h = b.push(&format!("{p}.act1"), act.clone(), vec![h]);
    let (h, _) = b.conv(&format!("{p}.conv1.conv"), h, false, 1)?;
    let h = b.norm(&format!("{p}.norm2"), h, c)?;
    let h = b.push(&format!("{p}.act2"), act, vec![h]);
    let (h, _) = b.conv(&format!("{p}.conv2.conv"), h, false, 1)?;
    Ok(b.push(&format!("{p}.add"), Op::Add, vec![h, x]))
}

/// A network_def entry that is a list of per-stage sizes, each one number or one per axis.
fn stage_sizes(def: &Value, key: &str) -> Result<Vec<[usize; 3]>, String> {
    super::kwargs::stage_sizes(def.get(key), None)
        .ok_or_else(|| format!("network_def: \"{key}\" is not a list of 3D sizes"))
}

/// A network_def entry that is one 3D size (`default` when absent).
fn size(def: &Value, key: &str, default: usize) -> Result<[usize; 3], String> {
    match def.get(key) {
        None => Ok([default; 3]),
        Some(v) => super::kwargs::size3(v).ok_or_else(|| format!("network_def: \"{key}\" is not a 3D size: {v}")),
    }
}

/// DynUNet (MONAI's nnU-Net-like network): per stage a `UnetResBlock` (conv, norm, act, conv,
/// norm, plus the input — through a 1×1×1 conv and norm where the block strides or widens —
/// then act) or a `UnetBasicBlock` (conv, norm, act, conv, norm, act), the first conv of each
/// stage strided; transposed convs up, their output concatenated before the skip; a 1×1×1 head.
/// Deep-supervision heads are ignored.
fn dyn_unet(def: &Value, weights: &Weights, device: &Device) -> Result<Graph, String> {
    let (kernels, strides) = (stage_sizes(def, "kernel_size")?, stage_sizes(def, "strides")?);
    let up_kernels = stage_sizes(def, "upsample_kernel_size")?;
    let n = kernels.len();
    if n < 2 || strides.len() != n || up_kernels.len() + 1 != n {
        return Err("network_def: DynUNet needs kernel_size and strides per stage, upsample_kernel_size for all but \
                    the first"
            .into());
    }
    let act = activation(def.get("act_name"), ("leakyrelu", serde_json::json!({"negative_slope": 0.01})), device)?;
    let norm = named(def.get("norm_name"), ("instance", serde_json::json!({"affine": true})));
    let mut b = Builder::new(def, weights, device, norm, act)?;
    let res = def.get("res_block").and_then(Value::as_bool).unwrap_or(false);
    let in_channels = b.shape("input_block.conv1.conv.weight")?[1];
    let pad =
        |k: [usize; 3], s: [usize; 3]| -> [usize; 3] { std::array::from_fn(|i| (k[i] + 1).saturating_sub(s[i]) / 2) };
    let mut h = 0;
    let mut skips = Vec::new();
    for stage in 0..n {
        let p = match stage {
            0 => "input_block".to_string(),
            s if s == n - 1 => "bottleneck".to_string(),
            s => format!("downsamples.{}", s - 1),
        };
        h = dyn_block(&mut b, &p, h, kernels[stage], strides[stage], pad(kernels[stage], strides[stage]), res)?;
        skips.push(h);
    }
    skips.pop();
    for i in 0..n - 1 {
        let p = format!("upsamples.{i}");
        let (k, s) = (up_kernels[n - 2 - i], strides[n - 1 - i]);
        let padding = pad(k, s);
        let name = format!("{p}.transp_conv.conv");
        let shape = b.shape(&format!("{name}.weight"))?;
        let weight = b.tensor(&format!("{name}.weight"), [shape[0], shape[1], k[0], k[1], k[2]])?;
        let output_padding = std::array::from_fn(|a| (2 * padding[a] + s[a]).saturating_sub(k[a]));
        let spec = ConvSpec { weight, bias: None, stride: s, padding, output_padding, transposed: true };
        let up = b.push(&name, Op::Conv(spec), vec![h]);
        let skip = skips.pop().expect("a skip per up level");
        // UnetUpBlock: torch.cat((out, skip)): the up-sampled features first.
        let cat = b.push(&format!("{p}.cat"), Op::Concat, vec![up, skip]);
        let k = kernels[n - 2 - i];
        h = dyn_block(&mut b, &format!("{p}.conv_block"), cat, k, [1; 3], pad(k, [1; 3]), false)?;
    }
    let (head, _) = b.conv("output_block.conv.conv", h, false, 0)?;
    b.finish(head, in_channels)
}

/// A DynUNet block at `p`: `UnetResBlock` when `res`, else `UnetBasicBlock`.
fn dyn_block(
    b: &mut Builder,
    p: &str,
    x: usize,
    k: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
    res: bool,
) -> Result<usize, String> {
    let act = b.act.clone();
    let (h, c) = b.conv_with(&format!("{p}.conv1.conv"), x, k, stride, padding)?;
    let h = b.norm(&format!("{p}.norm1"), h, c)?;
    let h = b.push(&format!("{p}.act1"), act.clone(), vec![h]);
    let (h, _) = b.conv_with(&format!("{p}.conv2.conv"), h, k, [1; 3], padding_for(k))?;
    let h = b.norm(&format!("{p}.norm2"), h, c)?;
    if !res {
        return Ok(b.push(&format!("{p}.act2"), act, vec![h]));
    }
    let mut r = x;
    if b.weights.shape(&format!("{p}.conv3.conv.weight")).is_some() {
        let (y, _) = b.conv_with(&format!("{p}.conv3.conv"), x, [1; 3], stride, [0; 3])?;
        r = b.norm(&format!("{p}.norm3"), y, c)?;
    }
    let sum = b.push(&format!("{p}.add"), Op::Add, vec![h, r]);
    Ok(b.push(&format!("{p}.act2"), act, vec![sum]))
}

/// Same padding of a stride-1 conv.
fn padding_for(k: [usize; 3]) -> [usize; 3] {
    k.map(|k| (k - 1) / 2)
}

/// MONAI's `UNet` (residual units as in Kerfoot et al. 2018 when `num_res_units` > 0): per level
/// a down layer (a strided `Convolution`, or a `ResidualUnit` of `num_res_units` convs whose input
/// is added back, through a strided conv where it strides or widens), the deeper levels' output
/// concatenated after the down layer's (`SkipConnection`), and an up layer (a transposed
/// `Convolution`, followed by a one-conv `ResidualUnit` when residual); the top up layer ends in
/// a bare conv (no norm, no activation). Defaults are MONAI's: PReLU, instance norm without
/// affine, ADN order norm–dropout–activation.
fn unet(def: &Value, weights: &Weights, device: &Device) -> Result<Graph, String> {
    let channels: Vec<usize> = def
        .get("channels")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).map(|v| v as usize).collect())
        .unwrap_or_default();
    let strides = stage_sizes(def, "strides")?;
    if channels.len() < 2 || strides.len() + 1 != channels.len() {
        return Err("network_def: UNet needs at least two \"channels\" and one \"strides\" entry fewer".into());
    }
    let act = activation(def.get("act"), ("prelu", Value::Null), device)?;
    let norm = named(def.get("norm"), ("instance", Value::Null));
    let mut b = Builder::new(def, weights, device, norm, act)?;
    let res = def.get("num_res_units").and_then(Value::as_u64).unwrap_or(0) as usize;
    let unet = MonaiUNet { res, kernel: size(def, "kernel_size", 3)?, up_kernel: size(def, "up_kernel_size", 3)? };
    let first = if res > 0 { "model.0.conv.unit0.conv.weight" } else { "model.0.conv.weight" };
    let in_channels = b.shape(first)?[1];
    let out = unet.level(&mut b, "model", 0, &strides, true)?;
    b.finish(out, in_channels)
}

/// The shape of a MONAI `UNet`: residual units per conv block, kernel of the convs and of the
/// transposed convs.
struct MonaiUNet {
    res: usize,
    kernel: [usize; 3],
    up_kernel: [usize; 3],
}

impl MonaiUNet {
    /// The block of level `i` at `p` (`_create_block`): down, the deeper levels beside the
    /// down layer's output, up.
    fn level(&self, b: &mut Builder, p: &str, x: usize, strides: &[[usize; 3]], top: bool) -> Result<usize, String> {
        let down = self.down(b, &format!("{p}.0"), x, strides[0])?;
        let sub = format!("{p}.1.submodule");
        let deeper = if strides.len() > 1 {
            self.level(b, &sub, down, &strides[1..], false)?
        } else {
            self.down(b, &sub, down, [1; 3])?
        };
        // SkipConnection: torch.cat([x, submodule(x)]).
        let cat = b.push(&format!("{p}.1.cat"), Op::Concat, vec![down, deeper]);
        self.up(b, &format!("{p}.2"), cat, strides[0], top)
    }

    fn down(&self, b: &mut Builder, p: &str, x: usize, stride: [usize; 3]) -> Result<usize, String> {
        if self.res > 0 {
            self.residual_unit(b, p, x, stride, self.res, false)
        } else {
            self.convolution(b, p, x, stride, false, false)
        }
    }

    fn up(&self, b: &mut Builder, p: &str, x: usize, stride: [usize; 3], top: bool) -> Result<usize, String> {
        if self.res == 0 {
            return self.convolution(b, p, x, stride, true, top);
        }
        let h = self.convolution(b, &format!("{p}.0"), x, stride, true, false)?;
        self.residual_unit(b, &format!("{p}.1"), h, [1; 3], 1, top)
    }

    /// MONAI's `Convolution` at `p`: a conv (same padding; transposed: the output `stride` times
    /// the input) and, unless `conv_only`, its ADN.
    fn convolution(
        &self,
        b: &mut Builder,
        p: &str,
        x: usize,
        stride: [usize; 3],
        transposed: bool,
        conv_only: bool,
    ) -> Result<usize, String> {
        let k = if transposed { self.up_kernel } else { self.kernel };
        let output_padding = transposed.then(|| stride.map(|s| s - 1));
        let (h, out) = b.conv_checked(&format!("{p}.conv"), x, k, stride, padding_for(k), output_padding)?;
        if conv_only {
            return Ok(h);
        }
        b.adn(&format!("{p}.adn"), h, out)
    }

    /// MONAI's `ResidualUnit` at `p`: `subunits` convolutions (the first with `stride`; the last
    /// without ADN when `last_conv_only`) plus the input, through `p.residual` (a conv) when the
    /// weights have one.
    fn residual_unit(
        &self,
        b: &mut Builder,
        p: &str,
        x: usize,
        stride: [usize; 3],
        subunits: usize,
        last_conv_only: bool,
    ) -> Result<usize, String> {
        let mut h = x;
        for su in 0..subunits.max(1) {
            let s = if su == 0 { stride } else { [1; 3] };
            h =
                self.convolution(b, &format!("{p}.conv.unit{su}"), h, s, false, last_conv_only && su + 1 == subunits)?;
        }
        let mut r = x;
        if let Some(shape) = b.weights.shape(&format!("{p}.residual.weight")) {
            let k = [shape[2], shape[3], shape[4]];
            r = b.conv_with(&format!("{p}.residual"), x, k, stride, padding_for(k))?.0;
        }
        Ok(b.push(&format!("{p}.add"), Op::Add, vec![h, r]))
    }
}

/// The names a bundle's metadata gives its input channels and output classes, if any.
pub(super) fn names(meta: Option<&Value>, io: &str, key: &str, n: usize, what: &str) -> Vec<String> {
    let defs = meta
        .and_then(|m| m.pointer(&format!("/network_data_format/{io}")))
        .and_then(Value::as_object)
        .and_then(|o| o.values().next())
        .and_then(|v| v.get(key))
        .and_then(Value::as_object);
    (0..n)
        .map(|i| {
            defs.and_then(|d| d.get(&i.to_string()))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(format!("{what} {i}"))
        })
        .collect()
}

/// A loaded MONAI model.
pub struct Monai {
    pub graph: Graph,
    pub card: ModelCard,
}

/// Loads the MONAI model in `model` onto `device`.
pub fn load(model: &mut ModelFiles, device: &Device) -> Result<Monai, String> {
    let (def_path, weights_path, meta_path) = files(model).ok_or_else(|| {
        format!(
            "{}: not a MONAI model folder (configs/inference.json and models/model.pt, or network.json \
             beside model.pt)",
            model.label()
        )
    })?;
    let json = model.json(&def_path)?;
    let (def_path, weights_name) = (model.show(&def_path), model.show(&weights_path));
    let def = json.get("network_def").unwrap_or(&json);
    let target = def
        .get("_target_")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: no network_def with a \"_target_\" naming the network class", def_path))?;
    let class = target.rsplit('.').next().unwrap_or(target);
    for (key, v) in def.as_object().into_iter().flatten() {
        if v.as_str().is_some_and(|s| s.starts_with('@') || s.starts_with('$')) {
            return Err(format!("{}: network_def's \"{key}\" is an expression ({v}); give the plain value", def_path));
        }
    }
    let weights = Weights::from_bytes(model.take(&weights_path)?, &weights_name)?;
    let graph = match class {
        "BasicUNet" | "BasicUnet" | "Basicunet" => basic_unet(def, &weights, device)?,
        "SegResNet" => seg_res_net(def, &weights, device)?,
        "DynUNet" | "DynUnet" | "Dynunet" => dyn_unet(def, &weights, device)?,
        "UNet" | "Unet" => unet(def, &weights, device)?,
        other => {
            return Err(format!(
                "{}: the MONAI network \"{other}\" is not supported yet (UNet, BasicUNet, SegResNet, DynUNet)",
                def_path
            ))
        }
    };
    let meta = meta_path.as_deref().map(|m| model.json(m)).transpose()?;
    let [ad, ah, aw] = graph.align();
    let [rd, rh, rw] = graph.receptive_radius();
    let mut sources = vec![def_path, weights_name];
    sources.extend(meta_path.map(|m| model.show(&m)));
    let card = ModelCard {
        architecture: format!("MONAI {class}"),
        parameters: graph.parameters(),
        channels: names(meta.as_ref(), "inputs", "channel_def", graph.in_channels, "channel")
            .into_iter()
            .map(|name| Channel {
                name,
                normalisation: Normalisation::Unknown { note: "as the bundle's preprocessing transforms".into() },
            })
            .collect(),
        classes: names(meta.as_ref(), "outputs", "channel_def", graph.classes, "class"),
        target_spacing: None,
        patch_size: None,
        align: [aw, ah, ad],
        receptive_radius: [rw, rh, rd],
        sources,
        inference: None,
    };
    Ok(Monai { graph, card })
}
