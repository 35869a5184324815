//! Layer-wise relevance propagation.
//!
//! `rules` holds the per-layer rules (each rule's formula in its doc comment, as in Zennit's
//! `rules.py`), `composite` which layer gets which rule, `canonize` the norm merging, and
//! `unet` walks a U-Net backwards with them.

pub mod canonize;
pub mod composite;
pub mod graph;
pub mod region;
pub mod rules;
pub mod unet;

pub use composite::Composite;
pub use rules::Rule;
pub use unet::{explain_target, explain_voxel, propagate, Explanation, Target};
