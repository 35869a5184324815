//! Layer-wise relevance propagation.
//!
//! `rules` holds the per-layer rules (each rule's formula in its doc comment, as in Zennit's
//! `rules.py`); `unet` walks a U-Net backwards with them.

pub mod rules;
pub mod unet;

pub use unet::{explain_voxel, Explanation};
