//! Which rule each layer gets: Zennit's composites, mapped onto a fully convolutional U-Net.
//!
//! Zennit assigns rules by module type. Every linear layer of the U-Net is a `Convolution` to
//! Zennit (Conv3d and ConvTranspose3d alike, the 1×1×1 head included), so its `Linear →
//! Epsilon` entries never apply here, and the "first layer" of the `…Box`/`…Flat` composites is
//! the first convolution in module order, `encoder.0.0.conv`, the one reading the MRI:
//!
//! | composite | first conv | every other conv, transposed conv and the head |
//! |---|---|---|
//! | `EpsilonPlus` | ZPlus | ZPlus |
//! | `EpsilonGammaBox` | ZBox(low, high) | Gamma(γ = 0.25) |
//! | `EpsilonAlpha2Beta1` | AlphaBeta(2, 1) | AlphaBeta(2, 1) |
//! | `EpsilonPlusFlat` | Flat | ZPlus |
//! | `EpsilonAlpha2Beta1Flat` | Flat | AlphaBeta(2, 1) |
//!
//! Activations get `Pass`; batch/instance norms are merged into their conv first
//! (`model::graph::merge`), as Zennit's `SequentialMergeBatchNorm` does. `Epsilon` (LRP-ε on every
//! layer, the simplest rule) and `Custom` (a rule per layer name) complete the set.

use serde::{Deserialize, Serialize};

use super::rules::Rule;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "composite")]
pub enum Composite {
    Epsilon {
        epsilon: f32,
    },
    EpsilonPlus,
    /// `low`/`high`: per input channel, the range of the normalised input (see engine.rs).
    EpsilonGammaBox {
        low: Vec<f32>,
        high: Vec<f32>,
    },
    EpsilonAlpha2Beta1,
    EpsilonPlusFlat,
    EpsilonAlpha2Beta1Flat,
    /// `layers`: layer name (`head`, `ups.0`, `decoder.0.1.conv`, …) → rule; others get `default`.
    Custom {
        default: Rule,
        layers: Vec<(String, Rule)>,
    },
    /// No rules at all: the plain gradient, as Zennit's attributors compute it without a
    /// composite (ReLUs gate it, sums copy it, pools route it; norm statistics held fixed).
    /// Not a menu entry: the gradient-based methods of `faithfulness::methods` run on it.
    Gradient,
}

/// Name of the layer Zennit treats as the first.
pub const FIRST_LAYER: &str = "encoder.0.0.conv";

/// Zennit's composites by name, in the page's menu order. The first is the default of the page,
/// `seglrp explain` and `seglrp cohort` (`engine::DEFAULT_COMPOSITE`): over the demo cohort's
/// tumours it has the highest MoRF AOPC and ABPC of the composites (README "How faithful is a
/// map?"), i.e. its map is the one whose most relevant values the region depends on most.
pub const NAMES: [&str; 6] =
    ["Epsilon", "EpsilonGammaBox", "EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat"];

impl Composite {
    /// Zennit's composite names, for the CLI and the page (`EpsilonGammaBox` gets its bounds later).
    pub fn by_name(name: &str) -> Option<Composite> {
        Some(match name {
            "Epsilon" => Composite::Epsilon { epsilon: super::rules::DEFAULT_EPSILON },
            "EpsilonPlus" => Composite::EpsilonPlus,
            "EpsilonGammaBox" => Composite::EpsilonGammaBox { low: Vec::new(), high: Vec::new() },
            "EpsilonAlpha2Beta1" => Composite::EpsilonAlpha2Beta1,
            "EpsilonPlusFlat" => Composite::EpsilonPlusFlat,
            "EpsilonAlpha2Beta1Flat" => Composite::EpsilonAlpha2Beta1Flat,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 6] = [
        "Epsilon",
        "EpsilonPlus",
        "EpsilonGammaBox",
        "EpsilonAlpha2Beta1",
        "EpsilonPlusFlat",
        "EpsilonAlpha2Beta1Flat",
    ];

    /// The rule for the linear layer called `name` of this project's U-Net.
    pub fn rule(&self, name: &str) -> Rule {
        self.rule_at(name, name == FIRST_LAYER)
    }

    /// The rule for the linear layer called `name`; `first` when it is the network's first
    /// convolution (the one reading the input), which the `…Box` and `…Flat` composites treat
    /// apart.
    pub fn rule_at(&self, name: &str, first: bool) -> Rule {
        match self {
            Composite::Epsilon { epsilon } => Rule::Epsilon { epsilon: *epsilon },
            Composite::EpsilonPlus => Rule::zplus(),
            Composite::EpsilonGammaBox { low, high } if first => {
                Rule::ZBox { low: low.clone(), high: high.clone(), stabilizer: super::rules::DEFAULT_EPSILON }
            }
            Composite::EpsilonGammaBox { .. } => Rule::gamma(),
            Composite::EpsilonAlpha2Beta1 => Rule::alpha2_beta1(),
            Composite::EpsilonPlusFlat | Composite::EpsilonAlpha2Beta1Flat if first => Rule::flat(),
            Composite::EpsilonPlusFlat => Rule::zplus(),
            Composite::EpsilonAlpha2Beta1Flat => Rule::alpha2_beta1(),
            Composite::Gradient => Rule::Gradient,
            Composite::Custom { default, layers } => {
                layers.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone()).unwrap_or_else(|| default.clone())
            }
        }
    }
}

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn every_menu_name_is_a_composite() {
        for name in NAMES {
            assert!(Composite::by_name(name).is_some(), "{name}");
        }
        assert_eq!(NAMES.iter().collect::<std::collections::BTreeSet<_>>().len(), NAMES.len());
    }
}
