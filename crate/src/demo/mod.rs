//! The bundled demonstration: liver MRI phantoms (from the deterministic `crate::rng`),
//! the toy model with a known reason, and training.

pub mod phantom;
pub mod toy_model;
#[cfg(feature = "train")]
pub mod train;
