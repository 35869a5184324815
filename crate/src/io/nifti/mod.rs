//! Reading and writing NIfTI volumes from bytes (no file system: the browser hands us bytes).
//!
//! NIfTI-1 and NIfTI-2, `.nii`, `.nii.gz` and `.hdr`/`.img` pairs, either byte order, every
//! scalar datatype. Files are streams (stream.rs): the header is read and checked first, and
//! only then the voxels it describes, so a file that is refused costs a few kilobytes whatever
//! its size; gzip is inflated as a stream with each member's CRC and length checked, and
//! never more than [`MAX_EXCESS_BYTES`] past what the header describes (a gzip bomb costs
//! nothing). Bytes a file holds beyond its image are not read and are reported in
//! [`FileInfo::notes`], as are geometry fall-backs (header.rs).

mod decode;
mod header;
mod stream;
mod write;

use std::io::Read;

use serde::Serialize;

pub use decode::DataType;
pub use header::{Header, Version, QUATERNION_TOLERANCE};
pub use stream::MAX_DEFLATE_RATIO;
pub use write::{write_label, write_nifti};

use crate::io::geometry::{Affine, AffineSource};
use crate::io::volume::Volume;

/// Most voxel values (all volumes of a file together) accepted: 2²⁸, i.e. 1 GiB as float32.
/// A wasm32 tab has at most 4 GiB for everything, and the network needs several copies.
pub const MAX_VALUES: u64 = 1 << 28;
/// Most bytes of stored voxel data accepted (1 GiB), checked from the header before reading.
pub const MAX_DATA_BYTES: u64 = 1 << 30;
/// Largest accepted side of a volume, in voxels.
pub const MAX_SIDE: i64 = 2048;
/// Largest accepted header + extensions before the voxel data.
const MAX_OFFSET: f64 = (64 << 20) as f64;
/// Most decompressed bytes after the image that are inflated (into nothing) to check a gzip
/// file's trailers; a stream that goes on longer is refused as not being what its header says.
pub const MAX_EXCESS_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    NotNifti(String),
    Truncated {
        expected: usize,
        found: usize,
        what: &'static str,
    },
    Unsupported(String),
    TooLarge {
        values: u64,
        bytes: u64,
    },
    BadDims(String),
    /// Damaged bytes (a gzip checksum, a stream cut short, a file that cannot hold its image).
    Corrupt(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotNifti(why) => write!(f, "this is not a readable NIfTI file: {why}"),
            ReadError::Truncated { expected, found, what } => write!(
                f,
                "the file is truncated: its {what} should have {expected} bytes but only {found} are there; was the \
                    download or copy complete?"
            ),
            ReadError::Unsupported(what) => write!(f, "{what}"),
            ReadError::TooLarge { values, bytes } => write!(
                f,
                "the image has {values} voxel values ({:.2} GiB stored); this tool accepts at most {MAX_VALUES} values \
                    and 1 GiB; crop or downsample it first",
                *bytes as f64 / (1u64 << 30) as f64
            ),
            ReadError::BadDims(why) => write!(f, "the header's dimensions are invalid: {why}"),
            ReadError::Corrupt(why) => write!(f, "the file is damaged: {why}"),
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
    /// The same, per volume (one entry for a 3-D file).
    pub non_finite_by_volume: Vec<usize>,
    /// What the reader noticed and worked around, in words (ignored bytes after the image or
    /// after the gzip stream, a geometry field passed over): shown by `seglrp info` and the page.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Nifti {
    pub volume: Volume,
    pub info: FileInfo,
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
fn finish(h: &Header, l: &Layout, data: &[u8], pair: bool, mut notes: Vec<String>) -> Result<Nifti, ReadError> {
    if data.len() < l.bytes {
        return Err(ReadError::Truncated { expected: l.bytes, found: data.len(), what: "image data" });
    }
    let scaling = (h.scl_slope != 0.0 && h.scl_slope.is_finite())
        .then(|| (h.scl_slope, if h.scl_inter.is_finite() { h.scl_inter } else { 0.0 }))
        .filter(|s| *s != (1.0, 0.0));
    let per_volume = l.dims[..3].iter().product::<usize>();
    let (values, non_finite_by_volume) =
        decode::decode(&data[..l.bytes], l.datatype, h.little_endian, scaling, per_volume);
    let non_finite = non_finite_by_volume.iter().sum();
    let (affine, affine_source, geometry_notes) = h.affine();
    notes.extend(geometry_notes);
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
        non_finite_by_volume,
        notes,
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
    read_nifti_from(bytes, Some(bytes.len() as u64))
}

/// [`read_nifti`] from a stream of `len` bytes (where known): the header first, the voxels
/// only once the header has been checked.
pub fn read_nifti_from<R: Read>(reader: R, len: Option<u64>) -> Result<Nifti, ReadError> {
    let mut src = stream::Contents::new(reader, len)?;
    let (h, head) = read_header(&mut src)?;
    if !h.single_file {
        return Err(ReadError::NotNifti(
            "this is the header (.hdr) of a .hdr/.img pair; give its .img file together with it".into(),
        ));
    }
    let l = layout(&h)?;
    let offset = data_offset(&h, h.header_size())?;
    let (data, notes) = read_data(&mut src, head, offset, &l)?;
    finish(&h, &l, &data, false, notes)
}

/// Reads a `.hdr`/`.img` pair (either or both may be gzipped).
pub fn read_nifti_pair(hdr: &[u8], img: &[u8]) -> Result<Nifti, ReadError> {
    read_nifti_pair_from(hdr, Some(hdr.len() as u64), img, Some(img.len() as u64))
}

/// [`read_nifti_pair`] from two streams of known (or unknown) length.
pub fn read_nifti_pair_from<H: Read, I: Read>(
    hdr: H,
    hdr_len: Option<u64>,
    img: I,
    img_len: Option<u64>,
) -> Result<Nifti, ReadError> {
    let mut head_src = stream::Contents::new(hdr, hdr_len)?;
    let (h, _) = read_header(&mut head_src)?;
    if h.single_file {
        return Err(ReadError::NotNifti(
            "this .hdr says its data follow the header in the same file (n+1/n+2), not in a .img".into(),
        ));
    }
    // A .hdr holds a header and perhaps extensions: inflate the rest (bounded) for its CRC.
    if head_src.drain(MAX_OFFSET as u64)?.is_none() {
        return Err(ReadError::NotNifti("the .hdr file is larger than any header with extensions".into()));
    }
    let l = layout(&h)?;
    let offset = data_offset(&h, 0)?;
    let mut src = stream::Contents::new(img, img_len)?;
    let (data, mut notes) = read_data(&mut src, Vec::new(), offset, &l)?;
    if head_src.trailing > 0 {
        notes.push(format!("{} bytes after the end of the .hdr's gzip stream were ignored", head_src.trailing));
    }
    finish(&h, &l, &data, true, notes)
}

/// What [`check_header`] found: how much of the file a reader needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadPlan {
    /// Bytes from the start of the (data) file that hold the image; `None` = the whole file
    /// (gzip, where compressed positions are not known in advance).
    pub read: Option<u64>,
    pub gzip: bool,
}

/// Checks a file from its first bytes (`prefix`, at most a few hundred KiB are needed) and its
/// length, before anything else is read: the header's limits, and whether a file of `len`
/// bytes can hold what the header describes. For a pair, `prefix` is the `.hdr`'s start and
/// `len` the `.img`'s length. The page calls this before it reads a dropped file.
pub fn check_header(prefix: &[u8], len: u64, img: Option<ImgFile>) -> Result<ReadPlan, ReadError> {
    let pair = img.is_some();
    let mut src = stream::Contents::new(prefix, None)?;
    let (h, _) = read_header(&mut src)?;
    if h.single_file == pair {
        return Err(ReadError::NotNifti(if pair {
            "this .hdr says its data follow the header in the same file (n+1/n+2), not in a .img".into()
        } else {
            "this is the header (.hdr) of a .hdr/.img pair; give its .img file together with it".into()
        }));
    }
    let l = layout(&h)?;
    let offset = data_offset(&h, if pair { 0 } else { h.header_size() })? as u64;
    let needed = offset + l.bytes as u64;
    let gzip = match img {
        Some(ImgFile { gzip }) => gzip,
        None => src.is_gzip(),
    };
    plausible(needed, len, gzip)?;
    Ok(ReadPlan { read: (!gzip).then_some(needed), gzip })
}

/// The data half of a pair, for [`check_header`]: whether it is gzip (its first two bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImgFile {
    pub gzip: bool,
}

/// Whether a file of `len` bytes (gzip or not) can hold `needed` bytes of header and image,
/// and holds nothing much else when compressed.
fn plausible(needed: u64, len: u64, gzip: bool) -> Result<(), ReadError> {
    if !gzip && len < needed {
        return Err(ReadError::Truncated {
            expected: needed as usize,
            found: len as usize,
            what: "header and image data",
        });
    }
    if gzip && len.saturating_mul(stream::MAX_DEFLATE_RATIO) + 1024 < needed {
        return Err(ReadError::Corrupt(format!(
            "its {len} bytes of gzip data cannot inflate to the {needed} bytes its header describes; the file is \
                truncated or its header is wrong"
        )));
    }
    // Deflate adds at most ~0.03 % to incompressible data; 1 % and 1 MiB leave room for
    // several members and their headers.
    if gzip && len > needed + needed / 100 + (1 << 20) + MAX_EXCESS_BYTES {
        return Err(ReadError::Corrupt(format!(
            "it holds {len} bytes of gzip data, far more than the {needed} bytes its header describes would take; it \
                is not the image its header says"
        )));
    }
    Ok(())
}

/// The header from the start of the contents, and every byte read to find it.
fn read_header<R: Read>(src: &mut stream::Contents<R>) -> Result<(Header, Vec<u8>), ReadError> {
    let head = src.read_up_to(header::NIFTI2_SIZE)?;
    Ok((Header::parse(&head)?, head))
}

/// The image's bytes: from `offset` in the contents, of which `head` were already read.
fn read_data<R: Read>(
    src: &mut stream::Contents<R>,
    head: Vec<u8>,
    offset: usize,
    l: &Layout,
) -> Result<(Vec<u8>, Vec<String>), ReadError> {
    let mut notes = Vec::new();
    if let Some(len) = src.len() {
        plausible((offset + l.bytes) as u64, len, src.is_gzip())?;
    }
    let mut data = Vec::new();
    if offset < head.len() {
        data.extend_from_slice(&head[offset..(offset + l.bytes).min(head.len())]);
    } else {
        let want = (offset - head.len()) as u64;
        let skipped = src.skip(want)?;
        if skipped < want {
            return Err(ReadError::Truncated { expected: l.bytes, found: 0, what: "image data" });
        }
    }
    // Plausible by now (the length can hold it, or it is inflated as it arrives): reserve once.
    data.reserve_exact(l.bytes - data.len());
    let missing = l.bytes - data.len();
    let got = src.read_into(&mut data, missing)?;
    if got < missing {
        return Err(ReadError::Truncated { expected: l.bytes, found: data.len(), what: "image data" });
    }
    if src.is_gzip() {
        // The header's read may already have taken bytes past a small image.
        let in_head = head.len().saturating_sub(offset + l.bytes) as u64;
        match src.drain(MAX_EXCESS_BYTES - in_head)?.map(|n| n + in_head) {
            None => {
                return Err(ReadError::Corrupt(format!(
                    "its gzip stream goes on for more than {} MiB after the image its header describes; it is not the \
                        image its header says",
                    MAX_EXCESS_BYTES >> 20
                )))
            }
            Some(0) => {}
            Some(n) => notes.push(format!("{n} bytes after the image data (inside the gzip stream) were ignored")),
        }
        if src.trailing > 0 {
            notes.push(format!("{} bytes after the end of the gzip stream were ignored", src.trailing));
        }
    } else if let Some(n) = src.len().map(|len| len.saturating_sub((offset + l.bytes) as u64)).filter(|n| *n > 0) {
        notes.push(format!("{n} bytes after the image data were ignored"));
    }
    Ok((data, notes))
}
