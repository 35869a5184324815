//! Model weights as safetensors with PyTorch parameter names (those of the twin in
//! `tests/twin.py`), next to a JSON [`UNetConfig`]. A user can train this U-Net family in
//! PyTorch, `save_file(model.state_dict())`, and load it here; anything that does not fit the
//! configuration is refused with the tensor's name.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

use crate::model::unet::{Block, NormKind, UNet, UNetConfig};

#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    Config(String),
    NotSafetensors(String),
    Missing(String),
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    Dtype { name: String, found: String },
    Unexpected(String),
    NonFinite(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Config(why) => write!(f, "the model configuration is unusable: {why}"),
            ModelError::NotSafetensors(why) => write!(f, "the weights file is not a readable safetensors file: {why}"),
            ModelError::Missing(name) => write!(
                f,
                "the weights lack the tensor \"{name}\" that the configuration \
                needs; do file and configuration belong together?"
            ),
            ModelError::Shape { name, expected, found } => write!(
                f,
                "the tensor \"{name}\" has shape {found:?}, but the configuration needs {expected:?}{}",
                if name == "encoder.0.0.conv.weight" && expected.get(1) != found.get(1) {
                    format!(
                        " ({} input sequences expected, the weights take \
                        {})",
                        expected[1],
                        found.get(1).copied().unwrap_or(0)
                    )
                } else {
                    String::new()
                }
            ),
            ModelError::Dtype { name, found } => write!(
                f,
                "the tensor \"{name}\" is {found}; float32, float64 or \
                float16 weights are accepted"
            ),
            ModelError::Unexpected(name) => write!(
                f,
                "the weights hold a tensor \"{name}\" this configuration has no \
                place for; does the configuration match the file?"
            ),
            ModelError::NonFinite(name) => write!(f, "the tensor \"{name}\" contains NaN or infinite values"),
        }
    }
}

impl std::error::Error for ModelError {}

/// A parameter slot of the network, by rank.
pub enum Slot<'a> {
    Vector(&'a mut Param<Tensor<1>>),
    Kernel(&'a mut Param<Tensor<5>>),
}

fn visit_block<'a>(prefix: String, block: &'a mut Block, out: &mut Vec<(String, Slot<'a>)>) {
    out.push((format!("{prefix}.conv.weight"), Slot::Kernel(&mut block.conv.weight)));
    if let Some(b) = block.conv.bias.as_mut() {
        out.push((format!("{prefix}.conv.bias"), Slot::Vector(b)));
    }
    if let Some(n) = block.norm.as_mut() {
        let batch = n.kind == NormKind::Batch;
        out.push((format!("{prefix}.norm.weight"), Slot::Vector(&mut n.weight)));
        out.push((format!("{prefix}.norm.bias"), Slot::Vector(&mut n.bias)));
        // PyTorch's InstanceNorm3d keeps no running statistics (track_running_stats=False).
        if batch {
            out.push((format!("{prefix}.norm.running_mean"), Slot::Vector(&mut n.running_mean)));
            out.push((format!("{prefix}.norm.running_var"), Slot::Vector(&mut n.running_var)));
        }
    }
}

/// Every parameter with its PyTorch name, in the twin's `state_dict` order.
pub fn parameters(net: &mut UNet) -> Vec<(String, Slot<'_>)> {
    let mut out = Vec::new();
    for (l, blocks) in net.encoder.iter_mut().enumerate() {
        for (b, block) in blocks.iter_mut().enumerate() {
            visit_block(format!("encoder.{l}.{b}"), block, &mut out);
        }
    }
    for (i, up) in net.ups.iter_mut().enumerate() {
        // The twin's up-sample + conv is `nn.Sequential(nn.Upsample, nn.Conv3d)`: index 1.
        let (prefix, weight, bias) = match (up.transposed.as_mut(), up.conv.as_mut()) {
            (Some(t), _) => (format!("ups.{i}"), &mut t.weight, t.bias.as_mut()),
            (None, Some(c)) => (format!("ups.{i}.1"), &mut c.weight, c.bias.as_mut()),
            (None, None) => continue,
        };
        out.push((format!("{prefix}.weight"), Slot::Kernel(weight)));
        if let Some(b) = bias {
            out.push((format!("{prefix}.bias"), Slot::Vector(b)));
        }
    }
    for (i, blocks) in net.decoder.iter_mut().enumerate() {
        for (b, block) in blocks.iter_mut().enumerate() {
            visit_block(format!("decoder.{i}.{b}"), block, &mut out);
        }
    }
    out.push(("head.weight".into(), Slot::Kernel(&mut net.head.weight)));
    if let Some(b) = net.head.bias.as_mut() {
        out.push(("head.bias".into(), Slot::Vector(b)));
    }
    out
}

fn host<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights"))
}

/// The network's weights as safetensors (float32, little-endian), with its configuration in
/// the metadata under "config". Reads the weights back synchronously: call it on a CPU device.
pub fn to_safetensors(net: &UNet) -> Vec<u8> {
    let mut copy = net.clone();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = parameters(&mut copy)
        .into_iter()
        .map(|(name, slot)| {
            let (shape, v) = match slot {
                Slot::Vector(p) => host(p.val()),
                Slot::Kernel(p) => host(p.val()),
            };
            (name, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).expect("consistent sizes"))
        })
        .collect();
    let config = serde_json::to_string(&net.config).expect("plain config");
    safetensors::serialize(views, Some([("config".to_string(), config)].into_iter().collect()))
        .expect("serialisable tensors")
}

fn values(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, ModelError> {
    let data = view.data();
    let v: Vec<f32> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => return Err(ModelError::Dtype { name: name.to_string(), found: format!("{other:?}") }),
    };
    if v.iter().any(|x| !x.is_finite()) {
        return Err(ModelError::NonFinite(name.to_string()));
    }
    Ok(v)
}

/// Builds the network `config` describes and fills it from safetensors bytes. Every tensor the
/// configuration needs must be there with its exact shape; PyTorch's `num_batches_tracked`
/// counters are ignored; any other extra tensor is an error (it means another architecture).
pub fn from_safetensors(config: &UNetConfig, bytes: &[u8], device: &Device) -> Result<UNet, ModelError> {
    config.validate().map_err(ModelError::Config)?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
    let cpu = crate::backend::cpu_device("cpu").map_err(ModelError::Config)?;
    let mut net = UNet::seeded(config, 0, 0.0, &cpu);
    let mut wanted = Vec::new();
    for (name, slot) in parameters(&mut net) {
        let view = file.tensor(&name).map_err(|_| ModelError::Missing(name.clone()))?;
        let expected = match &slot {
            Slot::Vector(p) => p.val().dims().to_vec(),
            Slot::Kernel(p) => p.val().dims().to_vec(),
        };
        if view.shape() != expected.as_slice() {
            return Err(ModelError::Shape { name, expected, found: view.shape().to_vec() });
        }
        let v = values(&name, &view)?;
        match slot {
            Slot::Vector(p) => *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, [expected[0]]), &cpu)),
            Slot::Kernel(p) => {
                let shape: [usize; 5] = expected.clone().try_into().expect("rank 5");
                *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), &cpu))
            }
        }
        wanted.push(name);
    }
    for name in file.names() {
        if !wanted.iter().any(|w| w == name) && !name.ends_with("num_batches_tracked") {
            return Err(ModelError::Unexpected(name.to_string()));
        }
    }
    Ok(net.to_device(device))
}

/// The configuration stored in a safetensors file's metadata by [`to_safetensors`], if any.
pub fn config_of(bytes: &[u8]) -> Option<UNetConfig> {
    let (_, meta) = SafeTensors::read_metadata(bytes).ok()?;
    serde_json::from_str(meta.metadata().as_ref()?.get("config")?).ok()
}

/// The bundled liver model (`seglrp train` with its defaults; README "Models").
pub const BUNDLED: &[u8] = include_bytes!("../../assets/liver-unet.safetensors");

/// The bundled liver model on `device`.
pub fn bundled(device: &Device) -> Result<UNet, ModelError> {
    let config =
        config_of(BUNDLED).ok_or_else(|| ModelError::Config("the bundled weights carry no configuration".into()))?;
    from_safetensors(&config, BUNDLED, device)
}
