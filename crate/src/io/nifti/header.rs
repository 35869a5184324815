//! The header fields SegLRP uses, from either NIfTI version. NIfTI-1 (348 bytes) is parsed by
//! the `nifti` crate; NIfTI-2 (540 bytes, 64-bit dims and offsets, f64 geometry), which that
//! crate does not read, is parsed here. Nothing in this module panics on any input.

use nifti::{Endianness, NiftiHeader};

use super::ReadError;
use crate::io::geometry::{Affine, AffineSource};

pub const NIFTI1_SIZE: usize = 348;
pub const NIFTI2_SIZE: usize = 540;
/// How far past 1 a qform quaternion's b² + c² + d² may be and still count as a rotation
/// (then renormalised, as niftilib does): float32 rounding of a unit quaternion stays well
/// inside it; anything further is a broken header.
pub const QUATERNION_TOLERANCE: f64 = 1e-4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Nifti1,
    Nifti2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: Version,
    pub little_endian: bool,
    /// `"n+1"`/`"n+2"` (data after the header) or `"ni1"`/`"ni2"` (a `.hdr` with its `.img`).
    pub single_file: bool,
    /// `dim[0..8]` as stored, widened (NIfTI-1 stores i16).
    pub dim: [i64; 8],
    pub datatype: i16,
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
}

impl Header {
    /// Parses the header at the start of `bytes` (uncompressed).
    pub fn parse(bytes: &[u8]) -> Result<Header, ReadError> {
        if bytes.len() < 4 {
            return Err(ReadError::NotNifti(format!("{} bytes is shorter than any NIfTI header", bytes.len())));
        }
        let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let size_le = i32::from_le_bytes(first);
        let size_be = i32::from_be_bytes(first);
        match (size_le, size_be) {
            (348, _) | (_, 348) => Self::parse_nifti1(bytes),
            (540, _) => Self::parse_nifti2(bytes, true),
            (_, 540) => Self::parse_nifti2(bytes, false),
            _ => Err(ReadError::NotNifti(
                "the first four bytes do not give a NIfTI header size (348 or 540); is this a NIfTI file?".into(),
            )),
        }
    }

    fn parse_nifti1(bytes: &[u8]) -> Result<Header, ReadError> {
        if bytes.len() < NIFTI1_SIZE {
            return Err(ReadError::Truncated { expected: NIFTI1_SIZE, found: bytes.len(), what: "header" });
        }
        let h = NiftiHeader::from_reader(bytes).map_err(|e| match e {
            nifti::NiftiError::InvalidFormat => ReadError::NotNifti(
                "the header has no NIfTI magic code (n+1/ni1); an Analyze 7.5 file? Convert it to NIfTI first".into(),
            ),
            other => ReadError::NotNifti(other.to_string()),
        })?;
        let f = |v: f32| v as f64;
        Ok(Header {
            version: Version::Nifti1,
            little_endian: h.endianness == Endianness::Little,
            single_file: h.magic[1] == b'+',
            dim: h.dim.map(|d| d as i16 as i64),
            datatype: h.datatype,
            pixdim: h.pixdim.map(f),
            vox_offset: f(h.vox_offset),
            scl_slope: f(h.scl_slope),
            scl_inter: f(h.scl_inter),
            qform_code: h.qform_code.into(),
            sform_code: h.sform_code.into(),
            quatern: [f(h.quatern_b), f(h.quatern_c), f(h.quatern_d)],
            qoffset: [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)],
            srow: [h.srow_x.map(f), h.srow_y.map(f), h.srow_z.map(f)],
        })
    }

    /// NIfTI-2 layout (nifti2.h): every field at a fixed offset.
    fn parse_nifti2(bytes: &[u8], little: bool) -> Result<Header, ReadError> {
        if bytes.len() < NIFTI2_SIZE {
            return Err(ReadError::Truncated { expected: NIFTI2_SIZE, found: bytes.len(), what: "header" });
        }
        let field = |at: usize, n: usize| -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&bytes[at..at + n]);
            if !little {
                b[..n].reverse();
            }
            b
        };
        let i16_at = |at| {
            let b = field(at, 2);
            i16::from_le_bytes([b[0], b[1]])
        };
        let i32_at = |at| {
            let b = field(at, 4);
            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let i64_at = |at| i64::from_le_bytes(field(at, 8));
        let f64_at = |at| f64::from_le_bytes(field(at, 8));
        let magic = &bytes[4..8];
        let single_file = match magic {
            b"n+2\0" => true,
            b"ni2\0" => false,
            _ => return Err(ReadError::NotNifti("the NIfTI-2 header has no magic code n+2/ni2".into())),
        };
        Ok(Header {
            version: Version::Nifti2,
            little_endian: little,
            single_file,
            dim: std::array::from_fn(|i| i64_at(16 + 8 * i)),
            datatype: i16_at(12),
            pixdim: std::array::from_fn(|i| f64_at(104 + 8 * i)),
            vox_offset: i64_at(168) as f64,
            scl_slope: f64_at(176),
            scl_inter: f64_at(184),
            qform_code: i32_at(344),
            sform_code: i32_at(348),
            quatern: [f64_at(352), f64_at(360), f64_at(368)],
            qoffset: [f64_at(376), f64_at(384), f64_at(392)],
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f64_at(400 + 32 * r + 8 * c))),
        })
    }

    pub fn header_size(&self) -> usize {
        match self.version {
            Version::Nifti1 => NIFTI1_SIZE,
            Version::Nifti2 => NIFTI2_SIZE,
        }
    }

    /// The voxel-to-world affine by the standard's precedence: sform, else qform, else
    /// pixdim, with a note for each field passed over. An sform or qform that is non-finite
    /// or singular (a zero or repeated axis: no voxel grid) falls back to the next, as does a
    /// qform whose quaternion is further from unit length than [`QUATERNION_TOLERANCE`]
    /// (b² + c² + d² > 1 + tolerance: no rotation; nibabel refuses such a qform outright).
    pub fn affine(&self) -> (Affine, AffineSource, Vec<String>) {
        let mut notes = Vec::new();
        if self.sform_code > 0 {
            let a = Affine(self.srow);
            match a.degenerate() {
                None => return (a, AffineSource::Sform, notes),
                Some(why) => notes.push(format!("the sform (sform_code {}) {why}; it was ignored", self.sform_code)),
            }
        }
        if self.qform_code > 0 {
            let [b, c, d] = self.quatern;
            let norm2 = b * b + c * c + d * d;
            let p = self.pixdim;
            let a = Affine::from_quaternion(self.quatern, self.qoffset, [p[0], p[1], p[2], p[3]]);
            let why = if !(norm2 <= 1.0 + QUATERNION_TOLERANCE) {
                Some(format!(
                    "has a quaternion of b² + c² + d² = {norm2:.4}, more than 1 (allowed: 1 + {QUATERNION_TOLERANCE}), \
                        which is no rotation"
                ))
            } else {
                a.degenerate()
            };
            match why {
                None => return (a, AffineSource::Qform, notes),
                Some(why) => notes.push(format!("the qform (qform_code {}) {why}; it was ignored", self.qform_code)),
            }
        }
        if !notes.is_empty() {
            notes.push(
                "the voxel grid is placed by the voxel size alone (pixdim, no rotation or origin): check its \
                orientation against the other files"
                    .into(),
            );
        }
        (Affine::diagonal(self.spacing()), AffineSource::Pixdim, notes)
    }

    /// Voxel size from `pixdim[1..3]`; unusable entries (0, negative, NaN) count as 1 mm.
    pub fn spacing(&self) -> [f32; 3] {
        [1, 2, 3].map(|i| {
            let p = self.pixdim[i].abs() as f32;
            if p.is_finite() && p > 0.0 {
                p
            } else {
                1.0
            }
        })
    }
}
