//! Where a pass starts: the relevance put on the logits for one output voxel and class
//! ([`Target`]), and what a pass returns for it ([`Explanation`]).

use burn::prelude::*;
use burn::tensor::TensorData;

/// The input relevance for one output voxel and class.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// `[1, C, D, H, W]`, same grid as the network input.
    pub relevance: Tensor<5>,
    /// The explained logit `y_c(a)`: the relevance the pass starts from.
    pub logit: Tensor<1>,
}

/// What an explanation starts from at its output voxel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// The logit `y_c` of the class explained.
    #[default]
    Logit,
    /// The logit difference `y_c − y_o`: relevance starts as `y_c` on class `c` and `−y_o` on
    /// class `o` (LRP-0 through the difference), i.e. `logits ⊙ (e_c − e_o)`, as Zennit does with
    /// `attr_output = output * (onehot_c − onehot_o)`.
    Difference { other: usize },
}

/// Start relevance for `target` of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_for(logits: &Tensor<5>, class: usize, voxel: [usize; 3], target: Target) -> Tensor<5> {
    let dims = logits.dims();
    let [_, _, d, h, w] = dims;
    let at = |c: usize| ((c * d + voxel[0]) * h + voxel[1]) * w + voxel[2];
    let mut mask = vec![0f32; dims.iter().product()];
    mask[at(class)] = 1.0;
    if let Target::Difference { other } = target {
        mask[at(other)] = -1.0;
    }
    logits.clone() * Tensor::from_data(TensorData::new(mask, dims), &logits.device())
}
