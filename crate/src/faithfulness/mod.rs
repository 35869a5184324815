//! How much to trust a relevance map, measured: region perturbation in 3D (MoRF/LeRF curves and
//! AOPC, `perturbation`), attribution methods beside LRP's composites on the same engine and
//! region (`methods`: gradient, gradient × input, integrated gradients, SmoothGrad, occlusion,
//! a random floor), the baselines a removed voxel becomes (`baseline`), and each channel's
//! relevance share beside the score lost without that channel (`ablation`). `probe` sets a
//! region up for all of them: its receptive window, its score, its maps.

pub mod ablation;
pub mod baseline;
pub mod evaluation;
pub mod methods;
pub mod perturbation;
pub mod probe;

pub use baseline::Baseline;
pub use evaluation::{evaluate, Evaluation, EvaluationOptions, MethodResult};
pub use methods::{attribute, Method, MethodOptions};
pub use perturbation::{curves, Curves, PerturbationOptions};
pub use probe::{Probe, Score};
