//! Layer-wise relevance propagation through a network [`Graph`](crate::model::Graph).
//!
//! `rules` holds the per-layer rules (each rule's formula in its doc comment, as in Zennit's
//! `rules.py`), `composite` which layer gets which rule (a registry of named composites),
//! `target` the relevance a pass starts from, `walk` the pass from the logits back to the input
//! (norms merged into their convs, pooling, up-sampling, concatenation and residual sums) and
//! its transpose, and `region_map` the exact two-pass map of a region of output voxels.

pub mod composite;
pub mod region_map;
pub mod rules;
pub mod target;
pub mod walk;

pub use composite::Composite;
pub use rules::Rule;
pub use target::{Explanation, Target};
pub use walk::{explain_target, propagate};
