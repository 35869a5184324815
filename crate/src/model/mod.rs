//! Networks as the engine sees them: a graph of nodes ([`graph`]) that every kind of model
//! becomes — this project's U-Net family ([`unet`]), nnU-Net's trained-model folders
//! ([`nnunet`]), MONAI networks ([`monai`]), ONNX exports (`onnx`) — with a model card saying what it expects
//! ([`card`]), checkpoints read as tensors only ([`checkpoint`]) and the U-Net family's own
//! safetensors ([`weights`]).

pub mod card;
pub mod checkpoint;
pub mod files;
pub mod graph;
pub mod kwargs;
pub mod monai;
pub mod nnunet;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod open;
pub mod unet;
pub mod weights;

pub use card::ModelCard;
pub use graph::{Graph, Node, Op, Trace};

/// Whether `path` names an ONNX file (by its extension).
pub fn onnx_file(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}
