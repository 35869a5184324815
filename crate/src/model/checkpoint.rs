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

    /// The float tensors of a PyTorch checkpoint (`source` names it in messages). The bytes are
    /// the reader's: tensors are read from them as they are needed, not copied up front.
    #[cfg(feature = "pth")]
    pub fn from_pth(bytes: Vec<u8>, source: &str) -> Result<Weights, String> {
        use pytorch_reader::{DType, PytorchReader};
        let reader = PytorchReader::from_bytes(bytes, None).map_err(|e| {
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
        Ok(Weights { tensors, source: source.to_string(), entry })
    }

    /// The top-level entry `key` of a PyTorch checkpoint when it is a tuple or list of small whole
    /// numbers, such as nnU-Net's `inference_allowed_mirroring_axes`: `Some(vec![])` where it is
    /// `None` or empty; `None` where it is absent or of another kind.
    ///
    /// burn's reader reads such values only from a file path (`read_pickle_data`), which the page
    /// has none of; this reads the one value from the checkpoint's `data.pkl` by its opcodes.
    pub fn pth_numbers(bytes: &[u8], key: &str) -> Option<Vec<usize>> {
        let pickle = data_pkl(bytes);
        pickled_numbers(pickle.as_deref().unwrap_or(bytes), key)
    }

    /// The weights in `bytes`, by the file's name: safetensors, or (with the `pth` feature) a
    /// PyTorch checkpoint.
    pub fn from_bytes(bytes: Vec<u8>, source: &str) -> Result<Weights, String> {
        if source.to_ascii_lowercase().ends_with(".safetensors") {
            return Weights::from_safetensors(&bytes, source);
        }
        #[cfg(feature = "pth")]
        return Weights::from_pth(bytes, source);
        #[cfg(not(feature = "pth"))]
        Err(format!("{source}: this build of SegLRP reads no PyTorch checkpoints (feature \"pth\")"))
    }

    /// A checkpoint file, by its name: safetensors, or (with the `pth` feature) a PyTorch file.
    pub fn from_file(path: &Path) -> Result<Weights, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Weights::from_bytes(bytes, &path.display().to_string())
    }
}

/// The `data.pkl` of a checkpoint in PyTorch's zip container (any root folder); `None` for the
/// other containers.
fn data_pkl(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())?
        .into_owned();
    let mut entry = archive.by_name(&name).ok()?;
    let mut out = Vec::new();
    entry.by_ref().take(1 << 27).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The value pickled right after the string `key` (a dictionary's key) when it is `None` or a
/// tuple or list of non-negative integers. Memo writes and protocol-4 frames between the opcodes
/// are skipped; anything else (a reference to an earlier object, another type) gives `None`.
fn pickled_numbers(pickle: &[u8], key: &str) -> Option<Vec<usize>> {
    let k = key.as_bytes();
    let mut forms: Vec<Vec<u8>> = vec![[&[b'X'][..], &(k.len() as u32).to_le_bytes(), k].concat()];
    if k.len() < 256 {
        forms.push([&[0x8c, k.len() as u8][..], k].concat());
    }
    let at = forms.iter().find_map(|f| pickle.windows(f.len()).position(|w| w == f.as_slice()).map(|i| i + f.len()))?;
    let mut r = &pickle[at..];
    let mut byte = || -> Option<u8> {
        let (&b, rest) = r.split_first()?;
        r = rest;
        Some(b)
    };
    let mut numbers = Vec::new();
    let bytes = |n: usize, r: &mut dyn FnMut() -> Option<u8>| -> Option<u64> {
        (0..n).try_fold((0u64, 0), |(v, s), _| Some((v | (r()? as u64) << s, s + 8))).map(|(v, _)| v)
    };
    loop {
        match byte()? {
            // BINPUT, LONG_BINPUT, MEMOIZE, FRAME: bookkeeping.
            b'q' => _ = bytes(1, &mut byte)?,
            b'r' => _ = bytes(4, &mut byte)?,
            0x94 => {}
            0x95 => _ = bytes(8, &mut byte)?,
            // None, (): nothing to mirror.
            b'N' | b')' if numbers.is_empty() => return Some(vec![]),
            // MARK, EMPTY_LIST: a sequence starts.
            b'(' | b']' => {}
            // BININT1, BININT2, BININT (non-negative).
            b'K' => numbers.push(bytes(1, &mut byte)? as usize),
            b'M' => numbers.push(bytes(2, &mut byte)? as usize),
            b'J' => numbers.push(usize::try_from(bytes(4, &mut byte)? as u32 as i32).ok()?),
            // APPEND, APPENDS: list items as they are added.
            b'a' | b'e' => {}
            // TUPLE1..3, TUPLE, LIST: the sequence ends.
            0x85 | 0x86 | 0x87 | b't' | b'l' => return Some(numbers),
            // A dictionary's next key (SETITEM(S) ends an ended list's dict entry).
            b'X' | 0x8c | b's' | b'u' if !numbers.is_empty() => return Some(numbers),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pickled_numbers;

    /// Pickles as `pickle.dumps({"axes": value, "n": 1}, protocol=2)` writes them (the bytes
    /// Python 3.11 gives), and protocol 4's short strings and memo.
    #[test]
    fn mirroring_axes_are_read_from_the_pickle() {
        let key = |p: u8| -> Vec<u8> {
            if p == 2 {
                [&b"}q\x00(X\x04\x00\x00\x00axesq\x01"[..]].concat()
            } else {
                [&b"\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04axes\x94"[..]].concat()
            }
        };
        let tail = b"X\x01\x00\x00\x00nq\x02K\x01u.";
        for p in [2, 4] {
            let with = |value: &[u8]| [key(p), value.to_vec(), tail.to_vec()].concat();
            assert_eq!(pickled_numbers(&with(b"K\x00K\x01K\x02\x87q\x03"), "axes"), Some(vec![0, 1, 2]));
            assert_eq!(pickled_numbers(&with(b"K\x00K\x02\x86q\x03"), "axes"), Some(vec![0, 2]));
            assert_eq!(pickled_numbers(&with(b"N"), "axes"), Some(vec![]));
            assert_eq!(pickled_numbers(&with(b")"), "axes"), Some(vec![]));
            // A list: EMPTY_LIST, memo, MARK, items, APPENDS.
            assert_eq!(pickled_numbers(&with(b"]q\x03(K\x01M\x00\x01e"), "axes"), Some(vec![1, 256]));
            // A float or a reference to an earlier object is not read as numbers.
            assert_eq!(pickled_numbers(&with(b"G?\xf0\x00\x00\x00\x00\x00\x00"), "axes"), None);
            assert_eq!(pickled_numbers(&with(b"h\x01"), "axes"), None);
            assert_eq!(pickled_numbers(&with(b"N"), "other"), None);
        }
    }
}
