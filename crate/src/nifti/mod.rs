//! Reading and writing NIfTI volumes from bytes (no file system: the browser hands us bytes).
//!
//! NIfTI-1 and NIfTI-2, `.nii`, `.nii.gz` and `.hdr`/`.img` pairs, either byte order, every
//! scalar datatype. Headers are checked before anything is allocated: a hostile header can
//! neither make us allocate without bound nor read past the buffer, and gzip is only ever
//! inflated up to the size the header announces, so a gzip bomb costs nothing.

mod decode;
mod header;
mod write;

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use serde::Serialize;

pub use decode::DataType;
pub use header::{Header, Version};
pub use write::{write_label, write_nifti};

use crate::geometry::{Affine, AffineSource};
use crate::volume::Volume;

/// Most voxel values (all volumes of a file together) accepted: 2²⁸, i.e. 1 GiB as float32.
/// A wasm32 tab has at most 4 GiB for everything, and the network needs several copies.
pub const MAX_VALUES: u64 = 1 << 28;
/// Most bytes of stored voxel data accepted (1 GiB), checked from the header before reading.
pub const MAX_DATA_BYTES: u64 = 1 << 30;
/// Largest accepted side of a volume, in voxels.
pub const MAX_SIDE: i64 = 2048;
/// Largest accepted header + extensions before the voxel data.
const MAX_OFFSET: f64 = (64 << 20) as f64;

#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    NotNifti(String),
    Truncated { expected: usize, found: usize, what: &'static str },
    Unsupported(String),
    TooLarge { values: u64, bytes: u64 },
    BadDims(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotNifti(why) => write!(f, "this is not a readable NIfTI file: {why}"),
            ReadError::Truncated { expected, found, what } => write!(
                f,
                "the file is truncated: its {what} should have {expected} bytes but only {found} are there; was the download or copy complete?"
            ),
            ReadError::Unsupported(what) => write!(f, "{what}"),
            ReadError::TooLarge { values, bytes } => write!(
                f,
                "the image has {values} voxel values ({:.2} GiB stored); this tool accepts at most {MAX_VALUES} values and 1 GiB; crop or downsample it first",
                *bytes as f64 / (1u64 << 30) as f64
            ),
            ReadError::BadDims(why) => write!(f, "the header's dimensions are invalid: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// What was read about a file besides its voxels: `seglrp info` prints it, the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileInfo {
    /// "NIfTI-1" or "NIfTI-2".
    pub format: &'static str,
    /// true for a `.hdr`/`.img` pair.
    pub pair: bool,
    pub little_endian: bool,
    pub datatype: DataType,
    /// Sizes of the non-trivial axes: `[nx, ny, nz]` or `[nx, ny, nz, nt]`.
    pub dims: Vec<usize>,
    pub spacing: [f32; 3],
    pub affine: Affine,
    pub affine_source: AffineSource,
    pub orientation: String,
    /// `(slope, intercept)` applied to the stored values, when the header asks for scaling.
    pub scaling: Option<(f64, f64)>,
    /// NaN or infinite voxels, replaced by 0.
    pub non_finite: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Nifti {
    pub volume: Volume,
    pub info: FileInfo,
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The first `limit` bytes of `bytes`, inflated if gzip. Never inflates past `limit`.
fn prefix(bytes: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, ReadError> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(&bytes[..limit.min(bytes.len())]));
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit as u64)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::NotNifti(format!("its gzip compression is damaged ({e})")))?;
    Ok(Cow::Owned(out))
}

/// Where the voxels are and how many bytes they take, from a header checked for sanity.
struct Layout {
    dims: [usize; 4],
    datatype: DataType,
    bytes: usize,
}

fn layout(h: &Header) -> Result<Layout, ReadError> {
    let rank = h.dim[0];
    if !(1..=7).contains(&rank) {
        return Err(ReadError::BadDims(format!("dim[0] is {rank}; it must be 1 to 7")));
    }
    if rank < 3 {
        return Err(ReadError::BadDims(format!(
            "this is a {rank}-D image; SegLRP needs 3-D volumes (or a 4-D stack of them)"
        )));
    }
    for i in 1..=rank as usize {
        let d = h.dim[i];
        if d <= 0 || d > MAX_SIDE {
            return Err(ReadError::BadDims(format!("axis {i} has {d} voxels (allowed: 1 to {MAX_SIDE})")));
        }
        if i > 4 && d > 1 {
            return Err(ReadError::BadDims(format!(
                "this is a {rank}-D image (axis {i} has {d} entries); SegLRP reads 3-D volumes or a 4-D stack of them"
            )));
        }
    }
    let dims: [usize; 4] = std::array::from_fn(|i| if i < rank as usize { h.dim[i + 1] as usize } else { 1 });
    let datatype = DataType::from_code(h.datatype)?;
    let values = dims.iter().map(|d| *d as u64).product::<u64>();
    let bytes = values * datatype.size() as u64;
    if values > MAX_VALUES || bytes > MAX_DATA_BYTES {
        return Err(ReadError::TooLarge { values, bytes });
    }
    Ok(Layout { dims, datatype, bytes: values as usize * datatype.size() })
}

fn data_offset(h: &Header, min: usize) -> Result<usize, ReadError> {
    let off = h.vox_offset;
    if !off.is_finite() || off < min as f64 || off > MAX_OFFSET {
        return Err(ReadError::NotNifti(format!(
            "the image data offset (vox_offset) is {off}; it must lie after the {min}-byte header"
        )));
    }
    Ok(off as usize)
}

/// Decodes, scales and describes the voxels once the data bytes are in hand.
fn finish(h: &Header, l: &Layout, data: &[u8], pair: bool) -> Result<Nifti, ReadError> {
    if data.len() < l.bytes {
        return Err(ReadError::Truncated { expected: l.bytes, found: data.len(), what: "image data" });
    }
    let scaling = (h.scl_slope != 0.0 && h.scl_slope.is_finite())
        .then(|| (h.scl_slope, if h.scl_inter.is_finite() { h.scl_inter } else { 0.0 }))
        .filter(|s| *s != (1.0, 0.0));
    let (values, non_finite) = decode::decode(&data[..l.bytes], l.datatype, h.little_endian, scaling);
    let (affine, affine_source) = h.affine();
    let rank = if l.dims[3] > 1 { 4 } else { 3 };
    let spacing = h.spacing();
    let info = FileInfo {
        format: match h.version {
            Version::Nifti1 => "NIfTI-1",
            Version::Nifti2 => "NIfTI-2",
        },
        pair,
        little_endian: h.little_endian,
        datatype: l.datatype,
        dims: l.dims[..rank].to_vec(),
        spacing,
        affine,
        affine_source,
        orientation: affine.orientation(),
        scaling,
        non_finite,
    };
    let [nx, ny, nz, nt] = l.dims;
    let volume = Volume { dims: [nx, ny, nz], channels: nt, spacing, affine, data: values };
    Ok(Nifti { volume, info })
}

/// Reads a single-file NIfTI (`.nii` or `.nii.gz`) held in memory. A 3-D file gives one
/// channel, a 4-D file one channel per volume. Intensities are scaled by
/// `scl_slope`/`scl_inter` in floating point (slope 0 = none); NaN and infinite voxels become
/// 0 and are counted in [`FileInfo::non_finite`].
pub fn read_nifti(bytes: &[u8]) -> Result<Nifti, ReadError> {
    let head = prefix(bytes, header::NIFTI2_SIZE)?;
    let h = Header::parse(&head)?;
    if !h.single_file {
        return Err(ReadError::NotNifti(
            "this is the header (.hdr) of a .hdr/.img pair; give its .img file together with it".into(),
        ));
    }
    let l = layout(&h)?;
    let offset = data_offset(&h, h.header_size())?;
    let all = prefix(bytes, offset + l.bytes)?;
    finish(&h, &l, all.get(offset..).unwrap_or(&[]), false)
}

/// Reads a `.hdr`/`.img` pair (either or both may be gzipped).
pub fn read_nifti_pair(hdr: &[u8], img: &[u8]) -> Result<Nifti, ReadError> {
    let head = prefix(hdr, header::NIFTI2_SIZE)?;
    let h = Header::parse(&head)?;
    if h.single_file {
        return Err(ReadError::NotNifti(
            "this .hdr says its data follow the header in the same file (n+1/n+2), not in a .img".into(),
        ));
    }
    let l = layout(&h)?;
    let offset = data_offset(&h, 0)?;
    let all = prefix(img, offset + l.bytes)?;
    finish(&h, &l, all.get(offset..).unwrap_or(&[]), true)
}
