//! Writing single-file NIfTI-1 (`n+1`), little-endian, with the study's affine as the sform.
//! (The `nifti` crate's writer needs a file path and `ndarray`; the browser has neither.)

use super::DataType;
use crate::io::geometry::Affine;
use crate::io::volume::Volume;

fn encode(
    dims: [usize; 4],
    spacing: [f32; 3],
    affine: &Affine,
    dtype: DataType,
    payload: &[u8],
    gzip: bool,
) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let rank = if dims[3] > 1 { 4 } else { 3 };
    let dim = [rank, dims[0], dims[1], dims[2], dims[3], 1, 1, 1];
    for (i, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d as i16);
    }
    put_i16(&mut h, 70, dtype.code());
    put_i16(&mut h, 72, 8 * dtype.size() as i16);
    let pixdim = [1.0, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2; // xyzt_units: mm
                // sform only: a qform would need the affine split into rotation and zooms, which an
                // oblique or sheared affine does not allow exactly; readers fall back to the sform.
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for (row, at) in [280usize, 296, 312].iter().enumerate() {
        for col in 0..4 {
            put_f32(&mut h, at + 4 * col, affine.0[row][col] as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(payload);
    if !gzip {
        return h;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &h).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// A volume as float32 NIfTI (4-D when it has several channels), gzip-compressed when `gzip`.
pub fn write_nifti(vol: &Volume, gzip: bool) -> Vec<u8> {
    let payload: Vec<u8> = vol.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let [nx, ny, nz] = vol.dims;
    encode([nx, ny, nz, vol.channels], vol.spacing, &vol.affine, DataType::Float32, &payload, gzip)
}

/// A label or segmentation (one byte per voxel, file order) as uint8 NIfTI on the grid of `like`.
pub fn write_label(mask: &[u8], like: &Volume, gzip: bool) -> Vec<u8> {
    assert_eq!(mask.len(), like.voxels(), "a label has one byte per voxel of its grid");
    let [nx, ny, nz] = like.dims;
    encode([nx, ny, nz, 1], like.spacing, &like.affine, DataType::Uint8, mask, gzip)
}
