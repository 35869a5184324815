//! The numerical kernels the networks are made of, for every backend: 3-D convolutions (a
//! direct CPU kernel beside burn's), pooling and ×2 up-sampling with the adjoints LRP needs.

pub mod conv;
pub mod pool;
pub mod upsample;

use burn::prelude::*;

/// The class of the largest logit per voxel, as floats `[n, 1, d, h, w]` (the first on ties).
pub fn predicted(logits: Tensor<5>) -> Tensor<5> {
    logits.argmax(1).float()
}
