//! Where on the grid work happens: receptive-field windows (`crop`), windowed studies
//! (`tiling`), sliding-window inference in overlapping patches (`sliding`), the regions to explain (`region`) and
//! overlap with a label (`metrics`).

pub mod crop;
pub mod metrics;
pub mod region;
pub mod sliding;
pub mod tiling;
