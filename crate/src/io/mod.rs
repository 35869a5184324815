//! Getting studies in and out: NIfTI reading and writing, DICOM series read as volumes, `.zip`
//! archives opened (for studies and models), the
//! voxel-to-world geometry, volumes in memory, studies assembled from files (channels matched to
//! a model's card) and resampling between grids.

pub mod archive;
pub mod dicom;
pub mod geometry;
#[cfg(target_arch = "wasm32")]
mod libc_shim;
pub mod nifti;
pub mod resample;
pub mod study;
pub mod volume;
