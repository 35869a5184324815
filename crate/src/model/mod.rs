//! Networks as the engine sees them: a graph of nodes ([`graph`]) that every kind of model
//! becomes — this project's U-Net family ([`unet`]), nnU-Net's trained-model folders
//! ([`nnunet`]), MONAI networks ([`monai`]) — with a model card saying what it expects
//! ([`card`]) and checkpoints read as tensors only ([`checkpoint`]).

pub mod card;
pub mod checkpoint;
pub mod graph;
pub mod monai;
pub mod nnunet;
pub mod open;
pub mod unet;

pub use card::ModelCard;
pub use graph::{Graph, Node, Op, Trace};
