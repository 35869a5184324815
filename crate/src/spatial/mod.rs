//! Where on the grid work happens: receptive-field windows (`crop`), windowed studies
//! (`tiling`), sliding-window inference in overlapping patches (`sliding`), resampling between
//! shapes as nnU-Net does it (`resize`) and its whole predictor (`predictor`), the regions to
//! explain (`region`) and overlap with a label (`metrics`).

pub mod crop;
pub mod metrics;
pub mod predictor;
pub mod region;
pub mod resize;
pub mod sliding;
pub mod tiling;
