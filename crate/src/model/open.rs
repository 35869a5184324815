//! Any model the engine takes, by what lies at a path: an nnU-Net trained-model folder, a MONAI
//! model folder, an ONNX file, or this project's U-Net weights (safetensors with the configuration in its
//! metadata).

use std::path::Path;

use burn::prelude::*;

use super::card::{Channel, ModelCard, Normalisation};
use super::graph::Graph;

/// A network ready for the graph engine, with its card.
pub struct Loaded {
    pub graph: Graph,
    pub card: ModelCard,
}

/// The card of this project's U-Net family (the liver demo's channels and classes when the
/// shapes match them).
pub fn unet_card(graph: &Graph, config: &crate::model::unet::UNetConfig, source: &str) -> ModelCard {
    let [ad, ah, aw] = graph.align();
    let [rd, rh, rw] = graph.receptive_radius();
    let demo = config.in_channels == crate::io::volume::SEQUENCES.len();
    ModelCard {
        architecture: format!(
            "SegLRP U-Net ({} levels, {} base channels, {} block(s) per level)",
            config.levels, config.base_channels, config.blocks
        ),
        parameters: graph.parameters(),
        channels: (0..config.in_channels)
            .map(|i| Channel {
                name: if demo { crate::io::volume::SEQUENCES[i].to_string() } else { format!("channel {i}") },
                normalisation: Normalisation::Body,
            })
            .collect(),
        classes: (0..config.classes)
            .map(|i| match crate::io::volume::CLASSES.get(i) {
                Some(n) if config.classes == crate::io::volume::CLASSES.len() => n.to_string(),
                _ => format!("class {i}"),
            })
            .collect(),
        target_spacing: None,
        patch_size: None,
        align: [aw, ah, ad],
        receptive_radius: [rw, rh, rd],
        sources: vec![source.to_string()],
    }
}

/// The model at `path` (an nnU-Net folder, optionally only `folds`; or U-Net safetensors) on
/// `device`.
pub fn open(path: &Path, folds: Option<&[String]>, device: &Device) -> Result<Loaded, String> {
    if super::nnunet::is_model_folder(path) {
        let m = super::nnunet::load(path, folds, device)?;
        return Ok(Loaded { graph: m.graph, card: m.card });
    }
    if super::monai::is_model_folder(path) {
        let m = super::monai::load(path, device)?;
        return Ok(Loaded { graph: m.graph, card: m.card });
    }
    if super::onnx_file(path) {
        #[cfg(feature = "onnx")]
        {
            let m = super::onnx::load(path, device)?;
            return Ok(Loaded { graph: m.graph, card: m.card });
        }
        #[cfg(not(feature = "onnx"))]
        return Err(format!("{}: this build of SegLRP reads no ONNX files (feature \"onnx\")", path.display()));
    }
    if path.is_dir() {
        return Err(format!(
            "{}: a folder, but neither an nnU-Net trained-model folder (plans.json, dataset.json, fold_N/) nor a \
             MONAI model (configs/inference.json and models/model.pt, or network.json beside model.pt)",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if crate::model::weights::config_of(&bytes).is_none() && safetensors::SafeTensors::deserialize(&bytes).is_ok() {
        return Err(format!(
            "{}: safetensors weights without a U-Net configuration in their metadata: give it with --config \
             (README \"Models\")",
            path.display()
        ));
    }
    let config = crate::model::weights::config_of(&bytes).ok_or_else(|| {
        format!(
            "{}: not a model this tool recognises (an nnU-Net or MONAI model folder, an .onnx file, or SegLRP U-Net \
             safetensors with its configuration)",
            path.display()
        )
    })?;
    let net = crate::model::weights::from_safetensors(&config, &bytes, device)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let graph = super::unet::graph(&net);
    let card = unet_card(&graph, &config, &path.display().to_string());
    Ok(Loaded { graph, card })
}
