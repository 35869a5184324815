//! SegLRP: layer-wise relevance propagation for 3D segmentation networks, one engine for the
//! browser (wasm32: WebGPU or CPU) and the command line.
//!
//! Layers, each a folder opening with what it holds: `ops` (convolution, pooling and
//! up-sampling kernels), `model` (the network graph, its builders and importers, weights),
//! `lrp` (rules, composites, the walk and region maps), `faithfulness` (perturbation curves,
//! other attribution methods, channel ablation), `io` (NIfTI, geometry, studies,
//! resampling), `spatial` (windows, tiling, regions), `demo` (phantoms, the toy model,
//! training); `engine` runs the pipeline, `backend` picks the device and reads tensors back,
//! `rng` is the deterministic random source of phantoms and test networks, `web` is the wasm API.

pub mod backend;
pub mod demo;
pub mod engine;
pub mod faithfulness;
pub mod io;
pub mod lrp;
pub mod model;
pub mod ops;
pub mod rng;
pub mod spatial;

#[cfg(target_arch = "wasm32")]
mod web;
