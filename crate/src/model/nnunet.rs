//! nnU-Net v2 trained-model folders: `dataset.json`, `plans.json` and `fold_N/checkpoint_final.pth`
//! become a [`Graph`] and a [`ModelCard`].
//!
//! The network is rebuilt from the configuration's `architecture` (`network_class_name` and
//! `arch_kwargs`, as nnU-Net's `get_network_from_plans` does) for the two classes of
//! `dynamic_network_architectures` nnU-Net trains: `PlainConvUNet` (conv–norm–nonlin blocks,
//! strided-conv down-sampling, transposed-conv up-sampling, concatenated skips) and
//! `ResidualEncoderUNet` (a stem and `BasicBlockD` residual blocks, whose skip is an average
//! pool and a 1×1×1 conv where the block changes resolution or width). Node names are the
//! checkpoint's parameter names (`encoder.stages.0.0.convs.0.conv`); the checkpoint's duplicated
//! keys (`all_modules.N`, `decoder.encoder.…`) and its deep-supervision heads other than the
//! last are read and ignored. Several folds become one graph whose output is the mean of the
//! folds' logits (each fold's head scaled by 1/F, then summed).

use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::Value;

use super::card::{Channel, Inference, ModelCard, Normalisation, Resampling};
use super::checkpoint::Weights;
use super::files::ModelFiles;
use super::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};

/// A loaded nnU-Net model.
pub struct NnUNet {
    pub graph: Graph,
    pub card: ModelCard,
}

/// Whether `files` look like an nnU-Net trained-model folder.
pub fn is_model(files: &ModelFiles) -> bool {
    files.has("plans.json") && files.has("dataset.json")
}

/// The arch_kwargs entry `key`, with a message naming it.
struct Kwargs<'a>(&'a Value);

impl Kwargs<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0.get(key).ok_or_else(|| format!("plans.json: arch_kwargs has no \"{key}\""))
    }

    fn usize(&self, key: &str) -> Result<usize, String> {
        self.get(key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("plans.json: \"{key}\" is not a whole number"))
    }

    /// A per-stage list of whole numbers (or one number for every stage).
    fn per_stage(&self, key: &str, stages: usize) -> Result<Vec<usize>, String> {
        match self.get(key)? {
            Value::Number(n) => Ok(vec![n.as_u64().unwrap_or(0) as usize; stages]),
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_u64().map(|v| v as usize).ok_or_else(|| format!("plans.json: \"{key}\" holds {v}")))
                .collect(),
            v => Err(format!("plans.json: \"{key}\" is {v}")),
        }
    }

    /// A per-stage list of per-axis triples (an entry may be one number for all three axes).
    fn triples(&self, key: &str, stages: usize) -> Result<Vec<[usize; 3]>, String> {
        super::kwargs::stage_sizes(Some(self.get(key)?), Some(stages)).ok_or_else(|| {
            format!("plans.json: \"{key}\" is not a list of {stages} 3D sizes (only 3D networks are explained)")
        })
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn bool(&self, key: &str, default: bool) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(default)
    }
}

/// What each conv–(dropout)–norm–nonlin block of the network does besides its conv.
#[derive(Clone, Debug)]
struct BlockKind {
    bias: bool,
    /// `None`: no norm; else instance (`false`) or batch (`true`) norm, with eps and affine.
    norm: Option<(bool, f32, bool)>,
    nonlin: Option<Op>,
    nonlin_first: bool,
}

fn block_kind(kw: &Kwargs) -> Result<BlockKind, String> {
    let norm = match kw.string("norm_op") {
        None => None,
        Some(op) => {
            let kwargs = kw.0.get("norm_op_kwargs").cloned().unwrap_or(Value::Null);
            let eps = kwargs.get("eps").and_then(Value::as_f64).unwrap_or(1e-5) as f32;
            let affine = kwargs.get("affine").and_then(Value::as_bool).unwrap_or(op.ends_with("BatchNorm3d"));
            if op.ends_with("InstanceNorm3d") {
                Some((false, eps, affine))
            } else if op.ends_with("BatchNorm3d") {
                Some((true, eps, affine))
            } else {
                return Err(format!("plans.json: the norm \"{op}\" is not supported (InstanceNorm3d, BatchNorm3d)"));
            }
        }
    };
    let nonlin = match kw.string("nonlin") {
        None => None,
        Some(op) if op.ends_with("LeakyReLU") => {
            let slope = kw.0.get("nonlin_kwargs").and_then(|k| k.get("negative_slope")).and_then(Value::as_f64);
            Some(Op::LeakyRelu(slope.unwrap_or(0.01) as f32))
        }
        Some(op) if op.ends_with(".ReLU") => Some(Op::Relu),
        Some(op) => return Err(format!("plans.json: the nonlinearity \"{op}\" is not supported (ReLU, LeakyReLU)")),
    };
    if let Some(op) = kw.string("conv_op") {
        if !op.ends_with("Conv3d") {
            return Err(format!("plans.json: the conv \"{op}\" is not a Conv3d; only 3D networks are explained"));
        }
    }
    Ok(BlockKind { bias: kw.bool("conv_bias", false), norm, nonlin, nonlin_first: kw.bool("nonlin_first", false) })
}

/// Builds one fold's nodes into `nodes`, reading parameters from `weights`.
struct Builder<'a> {
    nodes: &'a mut Vec<Node>,
    weights: &'a Weights,
    device: &'a Device,
    /// Prefix of node names (`fold_1/` in an ensemble).
    prefix: String,
}

impl Builder<'_> {
    fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name: format!("{}{name}", self.prefix), op, inputs });
        self.nodes.len() - 1
    }

    fn vector(&self, name: &str, n: usize) -> Result<Tensor<1>, String> {
        let t = self.weights.get(name, &[n])?;
        Ok(Tensor::from_data(TensorData::new(t.values.clone(), [n]), self.device))
    }

    fn kernel(&self, name: &str, shape: [usize; 5]) -> Result<Tensor<5>, String> {
        let t = self.weights.get(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.values.clone(), shape), self.device))
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: usize,
        cin: usize,
        cout: usize,
        k: [usize; 3],
        stride: [usize; 3],
        bias: bool,
    ) -> Result<usize, String> {
        let weight = self.kernel(&format!("{name}.weight"), [cout, cin, k[0], k[1], k[2]])?;
        let bias = if bias { Some(self.vector(&format!("{name}.bias"), cout)?) } else { None };
        let padding = k.map(|k| (k - 1) / 2);
        let spec = ConvSpec { weight, bias, stride, padding, output_padding: [0; 3], transposed: false };
        Ok(self.push(name, Op::Conv(spec), vec![x]))
    }

    fn norm(&mut self, name: &str, x: usize, c: usize, kind: (bool, f32, bool)) -> Result<usize, String> {
        let (batch, eps, affine) = kind;
        let statistics = if batch {
            Statistics::Running {
                mean: self.vector(&format!("{name}.running_mean"), c)?,
                var: self.vector(&format!("{name}.running_var"), c)?,
            }
        } else {
            Statistics::Instance
        };
        let (weight, bias) = if affine {
            (Some(self.vector(&format!("{name}.weight"), c)?), Some(self.vector(&format!("{name}.bias"), c)?))
        } else {
            (None, None)
        };
        Ok(self.push(name, Op::Norm(NormSpec { statistics, weight, bias, eps, channels: c }), vec![x]))
    }

    /// `ConvDropoutNormReLU` at `p`: conv, (dropout: nothing at inference), norm, nonlin
    /// (`nonlin: false` for the blocks that leave it to the caller).
    #[allow(clippy::too_many_arguments)]
    fn conv_block(
        &mut self,
        p: &str,
        x: usize,
        cin: usize,
        cout: usize,
        k: [usize; 3],
        stride: [usize; 3],
        kind: &BlockKind,
        bias: bool,
        nonlin: bool,
    ) -> Result<usize, String> {
        let mut h = self.conv(&format!("{p}.conv"), x, cin, cout, k, stride, bias)?;
        let act = |b: &mut Self, h: usize| match (&kind.nonlin, nonlin) {
            (Some(op), true) => b.push(&format!("{p}.nonlin"), op.clone(), vec![h]),
            _ => h,
        };
        if kind.nonlin_first {
            h = act(self, h);
        }
        if let Some(n) = kind.norm {
            h = self.norm(&format!("{p}.norm"), h, cout, n)?;
        }
        if !kind.nonlin_first {
            h = act(self, h);
        }
        Ok(h)
    }
}

/// The architecture's description, read from `arch_kwargs`.
struct Arch {
    residual: bool,
    stages: usize,
    features: Vec<usize>,
    kernels: Vec<[usize; 3]>,
    strides: Vec<[usize; 3]>,
    /// Convs (plain) or residual blocks per encoder stage.
    per_stage: Vec<usize>,
    per_stage_decoder: Vec<usize>,
    /// `conv`, `max` or `avg`.
    pool: String,
    kind: BlockKind,
}

fn arch(class: &str, kwargs: &Value) -> Result<Arch, String> {
    let kw = Kwargs(kwargs);
    let residual = match class.rsplit('.').next().unwrap_or(class) {
        "PlainConvUNet" => false,
        "ResidualEncoderUNet" => true,
        other => {
            return Err(format!(
                "plans.json: the network class \"{other}\" is not supported (PlainConvUNet, ResidualEncoderUNet)"
            ))
        }
    };
    if residual {
        if let Some(block) = kw.string("block") {
            if !block.ends_with("BasicBlockD") {
                return Err(format!("plans.json: the residual block \"{block}\" is not supported (BasicBlockD)"));
            }
        }
        for key in ["squeeze_excitation"] {
            if kw.bool(key, false) {
                return Err(format!("plans.json: \"{key}\" is not supported"));
            }
        }
    }
    let stages = kw.usize("n_stages")?;
    let per = if residual { "n_blocks_per_stage" } else { "n_conv_per_stage" };
    let a = Arch {
        residual,
        stages,
        features: kw.per_stage("features_per_stage", stages)?,
        kernels: kw.triples("kernel_sizes", stages)?,
        strides: kw.triples("strides", stages)?,
        per_stage: kw.per_stage(per, stages)?,
        per_stage_decoder: kw.per_stage("n_conv_per_stage_decoder", stages - 1)?,
        pool: kw.string(if residual { "pool_type" } else { "pool" }).unwrap_or("conv").to_string(),
        kind: block_kind(&kw)?,
    };
    if stages < 1
        || [a.features.len(), a.kernels.len(), a.strides.len(), a.per_stage.len()].iter().any(|&n| n != stages)
        || a.per_stage_decoder.len() + 1 != stages
    {
        return Err("plans.json: arch_kwargs' per-stage lists do not have n_stages entries".into());
    }
    if !["conv", "max", "avg"].contains(&a.pool.as_str()) {
        return Err(format!("plans.json: pooling \"{}\" is not supported", a.pool));
    }
    if let Some(s) = a.strides.iter().flatten().find(|s| **s == 0 || **s > 2) {
        return Err(format!("plans.json: a stride of {s} is not supported (1 or 2 per axis)"));
    }
    Ok(a)
}

/// One fold's network reading node `x`; returns its logits' node.
fn network(b: &mut Builder, a: &Arch, x: usize, cin: usize, classes: usize) -> Result<usize, String> {
    let kind = &a.kind;
    let mut skips = Vec::new();
    let mut h = x;
    let mut c = cin;
    if a.residual {
        // The stem: one conv block at full resolution.
        h = b.conv_block("encoder.stem.convs.0", h, c, a.features[0], a.kernels[0], [1; 3], kind, kind.bias, true)?;
        c = a.features[0];
    }
    for s in 0..a.stages {
        let stride = a.strides[s];
        let pooled = a.pool != "conv" && stride != [1; 3];
        let conv_stride = if a.pool == "conv" { stride } else { [1; 3] };
        if a.residual {
            let mut p = format!("encoder.stages.{s}");
            if pooled {
                let op = if a.pool == "max" { Op::MaxPool(stride) } else { Op::AvgPool(stride) };
                h = b.push(&format!("{p}.0"), op, vec![h]);
                p = format!("{p}.1");
            }
            for i in 0..a.per_stage[s] {
                let stride = if i == 0 { conv_stride } else { [1; 3] };
                let q = format!("{p}.blocks.{i}");
                let f = a.features[s];
                let k = a.kernels[s];
                let y = b.conv_block(&format!("{q}.conv1"), h, c, f, k, stride, kind, kind.bias, true)?;
                let y = b.conv_block(&format!("{q}.conv2"), y, f, f, k, [1; 3], kind, kind.bias, false)?;
                // BasicBlockD's skip: an average pool where it strides, a 1×1×1 conv (no bias) and
                // norm where the width changes.
                let mut r = h;
                let mut slot = 0;
                if stride != [1; 3] {
                    r = b.push(&format!("{q}.skip.{slot}"), Op::AvgPool(stride), vec![r]);
                    slot += 1;
                }
                if c != f {
                    r = b.conv_block(&format!("{q}.skip.{slot}"), r, c, f, [1; 3], [1; 3], kind, false, false)?;
                }
                let sum = b.push(&format!("{q}.add"), Op::Add, vec![y, r]);
                h = match &kind.nonlin {
                    Some(op) => b.push(&format!("{q}.nonlin2"), op.clone(), vec![sum]),
                    None => sum,
                };
                c = f;
            }
        } else {
            let mut p = format!("encoder.stages.{s}");
            if pooled {
                let op = if a.pool == "max" { Op::MaxPool(stride) } else { Op::AvgPool(stride) };
                h = b.push(&format!("{p}.0"), op, vec![h]);
                p = format!("{p}.1");
            } else {
                p = format!("{p}.0");
            }
            for i in 0..a.per_stage[s] {
                let stride = if i == 0 { conv_stride } else { [1; 3] };
                let f = a.features[s];
                h = b.conv_block(&format!("{p}.convs.{i}"), h, c, f, a.kernels[s], stride, kind, kind.bias, true)?;
                c = f;
            }
        }
        skips.push(h);
    }
    skips.pop();
    for s in 0..a.stages - 1 {
        let below = a.features[a.stages - 1 - s];
        let skip_c = a.features[a.stages - 2 - s];
        let stride = a.strides[a.stages - 1 - s];
        let name = format!("decoder.transpconvs.{s}");
        let weight = b.kernel(&format!("{name}.weight"), [below, skip_c, stride[0], stride[1], stride[2]])?;
        let bias = if kind.bias { Some(b.vector(&format!("{name}.bias"), skip_c)?) } else { None };
        let spec = ConvSpec { weight, bias, stride, padding: [0; 3], output_padding: [0; 3], transposed: true };
        let up = b.push(&name, Op::Conv(spec), vec![h]);
        let skip = skips.pop().expect("a skip per decoder stage");
        h = b.push(&format!("decoder.stages.{s}.cat"), Op::Concat, vec![up, skip]);
        c = 2 * skip_c;
        for i in 0..a.per_stage_decoder[s] {
            let k = a.kernels[a.stages - 2 - s];
            h =
                b.conv_block(&format!("decoder.stages.{s}.convs.{i}"), h, c, skip_c, k, [1; 3], kind, kind.bias, true)?;
            c = skip_c;
        }
    }
    b.conv(&format!("decoder.seg_layers.{}", a.stages - 2), h, c, classes, [1; 3], [1; 3], true)
}

/// The configuration a model folder was trained with: its name's last `__` part
/// (`nnUNetTrainer__nnUNetPlans__3d_fullres`), else the only 3D configuration of the plans.
fn configuration_of(files: &ModelFiles, plans: &Value) -> Result<String, String> {
    let configs =
        plans.get("configurations").and_then(Value::as_object).ok_or("plans.json has no \"configurations\"")?;
    if let Some(c) = files.name.as_deref().and_then(|n| n.rsplit("__").next()) {
        if configs.contains_key(c) {
            return Ok(c.to_string());
        }
    }
    let three: Vec<&String> = configs.keys().filter(|k| k.starts_with("3d")).collect();
    match three.as_slice() {
        [one] => Ok((*one).clone()),
        _ if configs.contains_key("3d_fullres") => Ok("3d_fullres".into()),
        _ => Err(format!(
            "{}: say which configuration the folder holds (its name ends in __CONFIGURATION); plans.json has {}",
            files.label(),
            configs.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A configuration with what it inherits (`inherits_from`) filled in.
fn resolved(plans: &Value, name: &str) -> Result<serde_json::Map<String, Value>, String> {
    let configs =
        plans.get("configurations").and_then(Value::as_object).ok_or("plans.json has no \"configurations\"")?;
    let mut chain = vec![name.to_string()];
    let mut out = serde_json::Map::new();
    while let Some(c) = chain.last().cloned() {
        let cfg = configs
            .get(&c)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("plans.json has no configuration \"{c}\""))?;
        for (k, v) in cfg {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        match cfg.get("inherits_from").and_then(Value::as_str) {
            Some(parent) if !chain.iter().any(|x| x == parent) => chain.push(parent.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The checkpoints of the folds in `folder` (`fold_N/checkpoint_final.pth`, else
/// `checkpoint_best.pth`), in fold order; `folds` picks some.
fn checkpoints(files: &ModelFiles, folds: Option<&[String]>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for d in files.folders("").into_iter().filter(|n| n.starts_with("fold_")) {
        let fold = d.trim_start_matches("fold_").to_string();
        if folds.is_some_and(|f| !f.contains(&fold)) {
            continue;
        }
        let path =
            ["checkpoint_final.pth", "checkpoint_best.pth"].iter().map(|c| format!("{d}/{c}")).find(|p| files.has(p));
        if let Some(p) = path {
            out.push((fold, p));
        }
    }
    // Files chosen one by one, without their fold folder: the one checkpoint given.
    if out.is_empty() && folds.is_none() {
        let one = ["checkpoint_final.pth", "checkpoint_best.pth"].into_iter().find(|c| files.has(c));
        out.extend(one.map(|c| (String::new(), c.to_string())));
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no fold_N/checkpoint_final.pth{}",
            files.label(),
            folds.map(|f| format!(" for folds {}", f.join(", "))).unwrap_or_default()
        ));
    }
    Ok(out)
}

fn channel_normalisation(plans: &Value, cfg: &serde_json::Map<String, Value>, i: usize) -> Normalisation {
    let scheme = cfg.get("normalization_schemes").and_then(|s| s.get(i)).and_then(Value::as_str).unwrap_or("");
    let mask = cfg.get("use_mask_for_norm").and_then(|s| s.get(i)).and_then(Value::as_bool).unwrap_or(false);
    let props = plans.get("foreground_intensity_properties_per_channel").and_then(|p| p.get(i.to_string()));
    let num = |k: &str| props.and_then(|p| p.get(k)).and_then(Value::as_f64).unwrap_or(f64::NAN) as f32;
    match scheme {
        "ZScoreNormalization" => Normalisation::ZScore { mask },
        "CTNormalization" => Normalisation::Ct {
            lower: num("percentile_00_5"),
            upper: num("percentile_99_5"),
            mean: num("mean"),
            std: num("std"),
        },
        "NoNormalization" => Normalisation::None,
        "RescaleTo01Normalization" => Normalisation::RescaleTo01,
        other => Normalisation::Unknown { note: format!("nnU-Net scheme \"{other}\"") },
    }
}

/// nnU-Net's predictor, where SegLRP runs it as nnU-Net does: the default resampling function,
/// axes not transposed and read as SimpleITK reads them (`[z, y, x]` arrays, as this project's
/// volumes are), softmax outputs. Otherwise the study is segmented in one pass on its own grid.
fn inference(plans: &Value, cfg: &serde_json::Map<String, Value>, region_based: bool) -> Option<Inference> {
    let identity = plans.get("transpose_forward").is_none_or(|t| t == &serde_json::json!([0, 1, 2]));
    let reader = plans.get("image_reader_writer").and_then(Value::as_str).unwrap_or("SimpleITKIO");
    let resampling = |which: &str| -> Option<Resampling> {
        let f = cfg.get(&format!("resampling_fn_{which}")).and_then(Value::as_str)?;
        if f != "resample_data_or_seg_to_shape" && f != "resample_data_or_seg_to_spacing" {
            return None;
        }
        let k = cfg.get(&format!("resampling_fn_{which}_kwargs"))?;
        let order = |key: &str, default: u64| k.get(key).and_then(Value::as_u64).unwrap_or(default) as usize;
        let r = Resampling {
            order: order("order", 3),
            order_z: order("order_z", 0),
            force_separate_z: k.get("force_separate_z").and_then(Value::as_bool),
        };
        [0, 1, 3].contains(&r.order).then_some(r).filter(|r| [0, 1, 3].contains(&r.order_z))
    };
    if !identity || reader != "SimpleITKIO" || region_based {
        return None;
    }
    Some(Inference { data: resampling("data")?, probabilities: resampling("probabilities")?, mirror_axes: vec![] })
}

/// Loads the model folder (all its folds, or those in `folds`) onto `device`.
pub fn load(files: &mut ModelFiles, folds: Option<&[String]>, device: &Device) -> Result<NnUNet, String> {
    let plans = files.json("plans.json")?;
    let dataset = files.json("dataset.json")?;
    let config = configuration_of(files, &plans)?;
    let cfg = resolved(&plans, &config)?;
    let architecture = cfg.get("architecture").ok_or_else(|| {
        format!(
            "plans.json: configuration \"{config}\" has no \"architecture\" \
             (plans from nnU-Net before v2.4 are not read)"
        )
    })?;
    let class = architecture.get("network_class_name").and_then(Value::as_str).unwrap_or("");
    let kwargs = architecture.get("arch_kwargs").ok_or("plans.json: the architecture has no \"arch_kwargs\"")?;
    let a = arch(class, kwargs)?;

    let names = dataset.get("channel_names").or_else(|| dataset.get("modality")).and_then(Value::as_object);
    let names = names.ok_or("dataset.json has no \"channel_names\"")?;
    let mut channels: Vec<(usize, String)> =
        names.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string()))).collect();
    channels.sort();
    let labels = dataset.get("labels").and_then(Value::as_object).ok_or("dataset.json has no \"labels\"")?;
    let region_based = labels.values().any(Value::is_array);
    let mut classes: Vec<(i64, String)> = labels
        .iter()
        .filter_map(|(name, v)| {
            let value = v.as_i64().or_else(|| v.as_array().and_then(|a| a.first()).and_then(Value::as_i64))?;
            Some((value, name.clone()))
        })
        .filter(|(v, _)| !(region_based && *v == 0))
        .collect();
    classes.sort();
    let cin = channels.len();

    let ckpts = checkpoints(files, folds)?;
    let folds_n = ckpts.len();
    let mut nodes = vec![Node { name: "input".into(), op: Op::Input, inputs: vec![] }];
    let mut heads = Vec::new();
    let mut sources = vec![files.show("plans.json"), files.show("dataset.json")];
    // nnU-Net reads the mirroring axes from the first fold's checkpoint (absent: no mirroring).
    let mut mirror_axes = None;
    for (i, (fold, path)) in ckpts.iter().enumerate() {
        let bytes = files.take(path)?;
        if i == 0 {
            mirror_axes = Weights::pth_numbers(&bytes, "inference_allowed_mirroring_axes");
        }
        let path = files.show(path);
        let weights = Weights::from_bytes(bytes, &path)?;
        let out = weights.shape(&format!("decoder.seg_layers.{}.weight", a.stages - 2)).map(|s| s[0]);
        if let Some(out) = out {
            if out != classes.len() {
                return Err(format!(
                    "{path}: the network has {out} outputs, dataset.json names {} classes",
                    classes.len()
                ));
            }
        }
        let prefix = if folds_n > 1 { format!("fold_{fold}/") } else { String::new() };
        let mut b = Builder { nodes: &mut nodes, weights: &weights, device, prefix };
        let head = network(&mut b, &a, 0, cin, classes.len())?;
        heads.push(head);
        sources.push(path);
    }
    let output = if folds_n == 1 {
        heads[0]
    } else {
        // The mean of the folds' logits: each head scaled by 1/F (linear, so LRP sees the mean),
        // then one sum.
        for &h in &heads {
            if let Op::Conv(spec) = &mut nodes[h].op {
                spec.weight = spec.weight.clone() / folds_n as f32;
                spec.bias = spec.bias.clone().map(|b| b / folds_n as f32);
            }
        }
        nodes.push(Node { name: "ensemble.mean".into(), op: Op::Add, inputs: heads });
        nodes.len() - 1
    };
    let graph = Graph { nodes, output, in_channels: cin, classes: classes.len() };
    graph.validate()?;

    let xyz = |v: &Value| -> Option<Vec<f64>> { v.as_array()?.iter().rev().map(Value::as_f64).collect() };
    let target_spacing = cfg.get("spacing").and_then(xyz).filter(|v| v.len() == 3).map(|v| [v[0], v[1], v[2]]);
    let patch_size = cfg
        .get("patch_size")
        .and_then(xyz)
        .filter(|v| v.len() == 3)
        .map(|v| [v[0] as usize, v[1] as usize, v[2] as usize]);
    let [ad, ah, aw] = graph.align();
    let [rd, rh, rw] = graph.receptive_radius();
    let card = ModelCard {
        architecture: format!(
            "nnU-Net {} ({config}){}{}",
            class.rsplit('.').next().unwrap_or(class),
            match (folds_n, ckpts[0].0.as_str()) {
                (1, "") => ", one checkpoint".to_string(),
                (1, fold) => format!(", fold {fold}"),
                _ => format!(", mean of {folds_n} folds"),
            },
            if region_based { ", region-based (sigmoid outputs)" } else { "" }
        ),
        parameters: graph.parameters(),
        channels: channels
            .iter()
            .map(|(i, name)| Channel { name: name.clone(), normalisation: channel_normalisation(&plans, &cfg, *i) })
            .collect(),
        classes: classes.into_iter().map(|(_, n)| n).collect(),
        target_spacing,
        patch_size,
        align: [aw, ah, ad],
        receptive_radius: [rw, rh, rd],
        sources,
        inference: inference(&plans, &cfg, region_based)
            .map(|i| Inference { mirror_axes: mirror_axes.unwrap_or_default(), ..i }),
    };
    Ok(NnUNet { graph, card })
}
