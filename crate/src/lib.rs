//! SegLRP: layer-wise relevance propagation for 3D segmentation networks, one engine for the
//! browser (wasm32: WebGPU or CPU) and the command line.

pub mod backend;
pub mod conv;
pub mod crop;
pub mod engine;
pub mod geometry;
pub mod lrp;
pub mod metrics;
pub mod model;
pub mod nifti;
pub mod phantom;
pub mod pool;
pub mod region;
pub mod resample;
pub mod rng;
pub mod study;
pub mod tiling;
pub mod toy_model;
#[cfg(feature = "train")]
pub mod train;
pub mod unet;
pub mod upsample;
pub mod volume;
pub mod weights;
pub mod window;

#[cfg(target_arch = "wasm32")]
mod web;
