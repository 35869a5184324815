//! Reading and writing NIfTI volumes from bytes (no file system: the browser hands us bytes).
//!
//! The header is parsed by the `nifti` crate (NIfTI-1 and -2, either byte order); voxel data
//! is decoded here from `vox_offset`, after size checks, so that a hostile header can neither
//! make us allocate without bound nor read past the buffer.

use std::io::Read;

use flate2::read::GzDecoder;
use nifti::{Endianness, NiftiHeader, NiftiType};

use crate::volume::Volume;

/// Largest voxel payload accepted, in bytes (1 GiB; a wasm32 tab has at most 4 GiB in all).
pub const MAX_DATA_BYTES: usize = 1 << 30;
/// Largest accepted side of a volume, in voxels.
pub const MAX_SIDE: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    NotNifti(String),
    Truncated { expected: usize, found: usize },
    Unsupported(String),
    TooLarge { bytes: usize },
    BadDims(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotNifti(why) => write!(f, "this is not a readable NIfTI file ({why})"),
            ReadError::Truncated { expected, found } => write!(
                f,
                "the file is truncated: its header announces {expected} bytes of image data but only {found} are there; was the download or copy complete?"
            ),
            ReadError::Unsupported(what) => write!(f, "{what}"),
            ReadError::TooLarge { bytes } => write!(
                f,
                "the volume would need {:.1} GiB, more than the {:.0} GiB this tool accepts; crop or downsample it first",
                *bytes as f64 / (1u64 << 30) as f64,
                MAX_DATA_BYTES as f64 / (1u64 << 30) as f64
            ),
            ReadError::BadDims(why) => write!(f, "the header's dimensions are invalid: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Decompress at most `limit` bytes: a gzip bomb stops at the limit instead of eating memory.
fn gunzip_limited(bytes: &[u8], limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::NotNifti(format!("gzip data is damaged: {e}")))?;
    if out.len() > limit {
        return Err(ReadError::TooLarge { bytes: out.len() });
    }
    Ok(out)
}

fn decode<T: Copy, const N: usize>(raw: &[u8], little: bool, from: fn([u8; N]) -> T, to: impl Fn(T) -> f32) -> Vec<f32> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut b: [u8; N] = c.try_into().expect("chunk of N bytes");
            if little != cfg!(target_endian = "little") {
                b.reverse();
            }
            to(from(b))
        })
        .collect()
}

fn decode_voxels(raw: &[u8], dtype: NiftiType, little: bool) -> Vec<f32> {
    use NiftiType::*;
    match dtype {
        Uint8 => raw.iter().map(|&v| v as f32).collect(),
        Int8 => raw.iter().map(|&v| v as i8 as f32).collect(),
        Int16 => decode(raw, little, i16::from_ne_bytes, |v| v as f32),
        Uint16 => decode(raw, little, u16::from_ne_bytes, |v| v as f32),
        Int32 => decode(raw, little, i32::from_ne_bytes, |v| v as f32),
        Uint32 => decode(raw, little, u32::from_ne_bytes, |v| v as f32),
        Int64 => decode(raw, little, i64::from_ne_bytes, |v| v as f32),
        Uint64 => decode(raw, little, u64::from_ne_bytes, |v| v as f32),
        Float32 => decode(raw, little, f32::from_ne_bytes, |v| v),
        Float64 => decode(raw, little, f64::from_ne_bytes, |v| v as f32),
        other => unreachable!("checked by supported_type: {other:?}"),
    }
}

fn supported_type(dtype: NiftiType) -> Result<(), ReadError> {
    use NiftiType::*;
    match dtype {
        Uint8 | Int8 | Int16 | Uint16 | Int32 | Uint32 | Int64 | Uint64 | Float32 | Float64 => Ok(()),
        other => Err(ReadError::Unsupported(format!(
            "voxels of type {other:?} (colour or complex) cannot be MRI intensities; export the sequence as a scalar image"
        ))),
    }
}

/// Reads a `.nii` or `.nii.gz` held in memory. A 3-D file gives one channel, a 4-D file one
/// channel per volume. Intensities are scaled by `scl_slope`/`scl_inter` (slope 0 = none);
/// NaN and infinite voxels become 0.
pub fn read_nifti(bytes: &[u8]) -> Result<Volume, ReadError> {
    let unzipped;
    let bytes = if is_gzip(bytes) {
        // 540 (NIfTI-2 header) + extensions: a generous allowance above the payload limit.
        unzipped = gunzip_limited(bytes, MAX_DATA_BYTES + (1 << 20))?;
        &unzipped[..]
    } else {
        bytes
    };
    if bytes.len() < 348 {
        return Err(ReadError::NotNifti(format!("{} bytes is shorter than any NIfTI header", bytes.len())));
    }
    let header = NiftiHeader::from_reader(bytes).map_err(|e| ReadError::NotNifti(e.to_string()))?;
    let rank = header.dim[0] as usize;
    if !(3..=4).contains(&rank) {
        return Err(ReadError::BadDims(format!(
            "{rank} dimensions; a study is a 3-D volume or a 4-D stack of 3-D volumes"
        )));
    }
    let mut dims = [1usize; 4];
    for (i, d) in dims.iter_mut().enumerate().take(rank) {
        *d = header.dim[i + 1] as usize;
        if *d == 0 || *d > MAX_SIDE {
            return Err(ReadError::BadDims(format!("side {} has {} voxels (allowed 1..={MAX_SIDE})", i + 1, *d)));
        }
    }
    let dtype = header
        .data_type()
        .map_err(|_| ReadError::Unsupported(format!("unknown voxel datatype code {}", header.datatype)))?;
    supported_type(dtype)?;
    let count: usize = dims.iter().product();
    let nbytes = count * dtype.size_of();
    if nbytes > MAX_DATA_BYTES {
        return Err(ReadError::TooLarge { bytes: nbytes });
    }
    let offset = header.vox_offset as usize;
    if header.vox_offset < 0.0 || !header.vox_offset.is_finite() || offset < 348 {
        return Err(ReadError::NotNifti(format!("image data offset {} lies inside the header", header.vox_offset)));
    }
    let found = bytes.len().saturating_sub(offset);
    if found < nbytes {
        return Err(ReadError::Truncated { expected: nbytes, found });
    }
    let little = header.endianness == Endianness::Little;
    let mut data = decode_voxels(&bytes[offset..offset + nbytes], dtype, little);
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    if slope != 0.0 && slope.is_finite() && inter.is_finite() && (slope != 1.0 || inter != 0.0) {
        data.iter_mut().for_each(|v| *v = *v * slope + inter);
    }
    data.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = 0.0);
    let spacing = [1, 2, 3].map(|i| {
        let p = header.pixdim[i].abs();
        if p.is_finite() && p > 0.0 { p } else { 1.0 }
    });
    Ok(Volume { dims: [dims[0], dims[1], dims[2]], channels: dims[3], spacing, data })
}

/// Writes a volume as single-file NIfTI-1 (`n+1`), float32, little-endian, with a diagonal
/// scanner-space affine from the voxel spacing; gzip-compressed when `gzip` is set.
/// (The `nifti` crate's writer needs a file path and `ndarray`; the browser has neither.)
pub fn write_nifti(vol: &Volume, gzip: bool) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let rank = if vol.channels > 1 { 4 } else { 3 };
    let dim = [rank, vol.dims[0], vol.dims[1], vol.dims[2], vol.channels, 1, 1, 1];
    for (i, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d as i16);
    }
    put_i16(&mut h, 70, NiftiType::Float32 as i16);
    put_i16(&mut h, 72, 32);
    let pixdim = [1.0, vol.spacing[0], vol.spacing[1], vol.spacing[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2; // xyzt_units: mm
    put_i16(&mut h, 252, 0); // qform_code
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for (row, at) in [280usize, 296, 312].iter().enumerate() {
        put_f32(&mut h, at + 4 * row, vol.spacing[row]);
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h.reserve(vol.data.len() * 4);
    for v in &vol.data {
        h.extend_from_slice(&v.to_le_bytes());
    }
    if !gzip {
        return h;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &h).expect("writing to memory");
    enc.finish().expect("writing to memory")
}
