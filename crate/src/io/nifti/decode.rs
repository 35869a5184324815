//! Voxel datatypes and their decoding to float32 intensities.

use serde::Serialize;

use super::ReadError;

/// The scalar datatypes a scanner pipeline writes; names as numpy/nibabel print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Uint8,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float32,
    Float64,
}

impl DataType {
    /// From the header's `datatype` code; colour, complex and the rest are refused by name.
    pub fn from_code(code: i16) -> Result<DataType, ReadError> {
        use DataType::*;
        Ok(match code {
            2 => Uint8,
            4 => Int16,
            8 => Int32,
            16 => Float32,
            64 => Float64,
            256 => Int8,
            512 => Uint16,
            768 => Uint32,
            1024 => Int64,
            1280 => Uint64,
            other => {
                let what = match other {
                    128 | 2304 => "colour (RGB) voxels",
                    32 | 1792 | 2048 => "complex-valued voxels",
                    1 => "1-bit voxels",
                    1536 => "128-bit float voxels",
                    _ => {
                        return Err(ReadError::Unsupported(format!(
                            "the header names an unknown voxel datatype (code {other})"
                        )))
                    }
                };
                return Err(ReadError::Unsupported(format!(
                    "this file holds {what} (datatype {other}), which cannot be MRI intensities; export the sequence \
                        as a scalar (e.g. int16 or float32) image"
                )));
            }
        })
    }

    pub fn code(self) -> i16 {
        use DataType::*;
        match self {
            Uint8 => 2,
            Int16 => 4,
            Int32 => 8,
            Float32 => 16,
            Float64 => 64,
            Int8 => 256,
            Uint16 => 512,
            Uint32 => 768,
            Int64 => 1024,
            Uint64 => 1280,
        }
    }

    pub fn size(self) -> usize {
        use DataType::*;
        match self {
            Uint8 | Int8 => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int64 | Uint64 | Float64 => 8,
        }
    }
}

fn convert<const N: usize>(raw: &[u8], little: bool, to_f64: fn([u8; N]) -> f64, out: &mut impl FnMut(f64)) {
    for chunk in raw.chunks_exact(N) {
        let mut b = [0u8; N];
        b.copy_from_slice(chunk);
        if !little {
            b.reverse();
        }
        out(to_f64(b));
    }
}

/// Stored values → `value · slope + intercept` (in f64, then rounded once to f32). Returns
/// the intensities and how many were NaN or infinite (those become 0) in each run of `chunk`
/// values (a 4-D file's volumes).
pub fn decode(
    raw: &[u8],
    dtype: DataType,
    little: bool,
    scaling: Option<(f64, f64)>,
    chunk: usize,
) -> (Vec<f32>, Vec<usize>) {
    let n = raw.len() / dtype.size();
    let chunk = chunk.max(1);
    let mut values = Vec::with_capacity(n);
    let mut non_finite = vec![0; n.div_ceil(chunk).max(1)];
    let (slope, inter) = scaling.unwrap_or((1.0, 0.0));
    let mut push = |v: f64| {
        let v = (v * slope + inter) as f32;
        if v.is_finite() {
            values.push(v);
        } else {
            non_finite[values.len() / chunk] += 1;
            values.push(0.0);
        }
    };
    use DataType::*;
    match dtype {
        Uint8 => raw.iter().for_each(|v| push(*v as f64)),
        Int8 => raw.iter().for_each(|v| push(*v as i8 as f64)),
        Int16 => convert(raw, little, |b| i16::from_le_bytes(b) as f64, &mut push),
        Uint16 => convert(raw, little, |b| u16::from_le_bytes(b) as f64, &mut push),
        Int32 => convert(raw, little, |b| i32::from_le_bytes(b) as f64, &mut push),
        Uint32 => convert(raw, little, |b| u32::from_le_bytes(b) as f64, &mut push),
        Int64 => convert(raw, little, |b| i64::from_le_bytes(b) as f64, &mut push),
        Uint64 => convert(raw, little, |b| u64::from_le_bytes(b) as f64, &mut push),
        Float32 => convert(raw, little, |b| f32::from_le_bytes(b) as f64, &mut push),
        Float64 => convert(raw, little, f64::from_le_bytes, &mut push),
    }
    (values, non_finite)
}
