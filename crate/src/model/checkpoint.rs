//! Named float tensors from the files people save networks in: PyTorch checkpoints (`.pth`,
//! `.pt`) through burn's pickle reader, which reads tensors and plain values only and never runs
//! pickled code, and safetensors.
//!
//! A training checkpoint holds more than the weights (nnU-Net's: optimizer state, logging, the
//! plans, numpy scalars, a `torch.device`); the weights are read from its `network_weights`,
//! `state_dict` or `model` entry when it has one. Prefixes that wrappers add to every name
//! (`module.` of DistributedDataParallel, `_orig_mod.` of `torch.compile`) are removed.

use std::collections::HashMap;
use std::path::Path;

/// A tensor's shape and values (as f32).
#[derive(Clone, Debug)]
pub struct Stored {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The weights of one network, by parameter name.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    pub tensors: HashMap<String, Stored>,
    /// Where they came from, for messages.
    pub source: String,
    /// The checkpoint entry the weights sit under (`network_weights.`), if any: names are looked
    /// up as they are first and under it second, because a network's own names may start the
    /// same way (MONAI's `UNet` keeps its layers in `model`).
    pub entry: Option<String>,
}

/// Entries of a training checkpoint that hold the network's weights, in the order tried.
#[cfg(feature = "pth")]
const WEIGHT_ENTRIES: [&str; 3] = ["network_weights", "state_dict", "model"];

fn strip(name: &str) -> &str {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("module.").or_else(|| n.strip_prefix("_orig_mod.")) {
        n = rest;
    }
    n
}

impl Weights {
    /// The tensor called `name` with the given shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Stored, String> {
        let t = self.find(name).ok_or_else(|| {
            format!(
                "{} has no tensor \"{name}\" that the network's plan needs; do plan and weights belong together?",
                self.source
            )
        })?;
        if t.shape != shape {
            return Err(format!(
                "{}: the tensor \"{name}\" has shape {:?}, the network needs {shape:?}",
                self.source, t.shape
            ));
        }
        if t.values.iter().any(|v| !v.is_finite()) {
            return Err(format!("{}: the tensor \"{name}\" contains NaN or infinite values", self.source));
        }
        Ok(t)
    }

    /// The shape of the tensor called `name`, if there is one.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.find(name).map(|t| t.shape.as_slice())
    }

    fn find(&self, name: &str) -> Option<&Stored> {
        self.tensors.get(name).or_else(|| self.tensors.get(&format!("{}{name}", self.entry.as_deref()?)))
    }

    /// The tensors of a safetensors file (float32, float64, float16 or bfloat16).
    pub fn from_safetensors(bytes: &[u8], source: &str) -> Result<Weights, String> {
        use safetensors::{Dtype, SafeTensors};
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| format!("{source} is not a readable safetensors file: {e}"))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                Dtype::F64 => {
                    data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
                }
                Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                    .collect(),
                // Integer buffers (BatchNorm's num_batches_tracked) carry no weights.
                _ => continue,
            };
            tensors.insert(strip(&name).to_string(), Stored { shape: view.shape().to_vec(), values });
        }
        Ok(Weights { tensors, source: source.into(), entry: None })
    }

    /// The float tensors of a PyTorch checkpoint file.
    #[cfg(feature = "pth")]
    pub fn from_pth(path: &Path) -> Result<Weights, String> {
        use pytorch_reader::{DType, PytorchReader};
        let source = path.display().to_string();
        let reader = PytorchReader::new(path).map_err(|e| {
            format!(
                "{source} cannot be read as a PyTorch checkpoint ({e}); \
                 save the weights with torch.save(model.state_dict(), path)"
            )
        })?;
        let all = reader.into_tensors();
        // The weights' entry, if the checkpoint nests them (the rest, optimizer state and the
        // like, is not read).
        let entry =
            WEIGHT_ENTRIES.iter().map(|e| format!("{e}.")).find(|p| all.keys().any(|k| k.starts_with(p.as_str())));
        let mut tensors = HashMap::new();
        for (name, t) in all {
            let name = match &entry {
                Some(p) if !name.starts_with(p.as_str()) => continue,
                Some(p) => format!("{p}{}", strip(&name[p.len()..])),
                None => strip(&name).to_string(),
            };
            let bytes = t.read().map_err(|e| format!("{source}: {e}"))?;
            let values: Vec<f32> = match t.dtype() {
                DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
                DType::F64 => {
                    bytes.chunks_exact(8).map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")) as f32).collect()
                }
                DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32()).collect(),
                DType::BF16 => bytes
                    .chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_ne_bytes([c[0], c[1]]) as u32) << 16))
                    .collect(),
                _ => continue,
            };
            tensors.insert(name, Stored { shape: t.shape().to_vec(), values });
        }
        if tensors.is_empty() {
            return Err(format!("{source} holds no float tensors"));
        }
        Ok(Weights { tensors, source, entry })
    }

    /// The entry `key` of a PyTorch checkpoint when it is a list (or tuple) of whole numbers, such
    /// as nnU-Net's `inference_allowed_mirroring_axes`; `None` when it is absent, `None` in
    /// Python, of another kind, or the file is not a PyTorch checkpoint.
    pub fn pth_numbers(path: &Path, key: &str) -> Option<Vec<usize>> {
        #[cfg(feature = "pth")]
        {
            use pytorch_reader::{PickleValue, PytorchReader};
            match PytorchReader::read_pickle_data(path, Some(key)).ok()? {
                PickleValue::List(items) => items
                    .iter()
                    .map(|v| match v {
                        PickleValue::Int(i) => usize::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        }
        #[cfg(not(feature = "pth"))]
        {
            let _ = (path, key);
            None
        }
    }

    /// A checkpoint by its file name: safetensors, or (with the `pth` feature) a PyTorch file.
    pub fn from_file(path: &Path) -> Result<Weights, String> {
        let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
        if is_safetensors {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Weights::from_safetensors(&bytes, &path.display().to_string());
        }
        #[cfg(feature = "pth")]
        return Weights::from_pth(path);
        #[cfg(not(feature = "pth"))]
        Err(format!(
            "{}: PyTorch checkpoints are read by the command line; convert to safetensors here",
            path.display()
        ))
    }
}
