//! Any model the engine takes, by what lies at a path: an nnU-Net trained-model folder, a MONAI
//! model folder, an ONNX file, or this project's U-Net weights (safetensors with the configuration in its
//! metadata).

use std::path::Path;

use burn::prelude::*;

use super::card::{Channel, ModelCard, Normalisation};
use super::files::{is_model_part, ModelFiles};
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
        inference: None,
    }
}

/// The model at `path` (an nnU-Net or MONAI folder or its .zip, nnU-Net's optionally only
/// `folds`; an .onnx file; or U-Net safetensors) on `device`.
pub fn open(path: &Path, folds: Option<&[String]>, device: &Device) -> Result<Loaded, String> {
    if path.is_dir() {
        if let Some(loaded) = open_folder(&mut ModelFiles::disk(path), folds, device) {
            return loaded;
        }
    }
    // A model folder as a .zip (nnUNetv2_export_model_to_zip's, or as the page receives one).
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut files = ModelFiles::memory(vec![(path.display().to_string(), bytes)])?;
        return open_folder(&mut files, folds, device)
            .unwrap_or_else(|| Err(format!("{}: the archive holds no nnU-Net or MONAI model folder", path.display())));
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

/// The nnU-Net or MONAI model in `files`, if they hold one.
fn open_folder(files: &mut ModelFiles, folds: Option<&[String]>, device: &Device) -> Option<Result<Loaded, String>> {
    if super::nnunet::is_model(files) {
        return Some(super::nnunet::load(files, folds, device).map(|m| Loaded { graph: m.graph, card: m.card }));
    }
    if super::monai::is_model(files) {
        return Some(super::monai::load(files, device).map(|m| Loaded { graph: m.graph, card: m.card }));
    }
    None
}

/// The model in `files` (`(name, bytes)`, as the page receives a drop; names may carry a dropped
/// folder's relative paths): an nnU-Net trained-model folder or a MONAI model (their files, or a
/// `.zip` of the folder), an `.onnx` file (with a MONAI bundle's `metadata.json` for channel and
/// class names, if given), or SegLRP U-Net safetensors (any channel and class count; the
/// configuration in the file's metadata or as a `.json` beside it).
pub fn from_files(files: Vec<(String, Vec<u8>)>, device: &Device) -> Result<Loaded, String> {
    let ends = |name: &str, ext: &str| name.to_ascii_lowercase().ends_with(ext);
    let folder = files.iter().any(|(n, _)| {
        [".zip", ".pth", ".pt", "plans.json", "inference.json", "network.json"].iter().any(|e| ends(n, e))
    });
    if folder {
        let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        let mut model = ModelFiles::memory(files)?;
        return open_folder(&mut model, None, device).unwrap_or_else(|| {
            Err(format!(
                "{}: neither an nnU-Net model folder (plans.json, dataset.json and fold_N/checkpoint_final.pth) nor a \
                 MONAI model (configs/inference.json or network.json with model.pt); drop the whole folder, its \
                 .zip, or those files together",
                names.iter().filter(|n| is_model_part(n) || ends(n, ".zip")).cloned().collect::<Vec<_>>().join(", ")
            ))
        });
    }
    let find = |ext: &str| files.iter().find(|(n, _)| ends(n, ext));
    let json = files.iter().find(|(n, _)| ends(n, ".json") && !ends(n, "metadata.json"));
    if let Some((name, bytes)) = find(".onnx") {
        #[cfg(feature = "onnx")]
        {
            let meta = match files.iter().find(|(n, _)| ends(n, "metadata.json")) {
                Some((n, b)) => Some(
                    serde_json::from_slice::<serde_json::Value>(b)
                        .map_err(|e| format!("{n} is not valid JSON: {e}"))?,
                ),
                None => None,
            };
            let m = super::onnx::from_bytes(bytes, name, meta.as_ref(), device)?;
            return Ok(Loaded { graph: m.graph, card: m.card });
        }
        #[cfg(not(feature = "onnx"))]
        return Err(format!("{name}: this build of SegLRP reads no ONNX files (feature \"onnx\")"));
    }
    if let Some((name, bytes)) = find(".safetensors") {
        let config: crate::model::unet::UNetConfig = match json {
            Some((n, text)) => serde_json::from_slice(text)
                .map_err(|e| format!("{n}: not a SegLRP U-Net configuration (docs/models.md): {e}"))?,
            None => crate::model::weights::config_of(bytes).ok_or_else(|| {
                format!("{name}: the weights carry no configuration: give its .json file together with them")
            })?,
        };
        config.validate().map_err(|e| format!("{name}: {e}"))?;
        let net =
            crate::model::weights::from_safetensors(&config, bytes, device).map_err(|e| format!("{name}: {e}"))?;
        let graph = super::unet::graph(&net);
        let card = unet_card(&graph, &config, name);
        return Ok(Loaded { graph, card });
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    Err(format!(
        "{}: not a model the page reads: give an nnU-Net or MONAI model folder (or its .zip), an .onnx file, \
         or SegLRP U-Net .safetensors (with its .json)",
        if names.is_empty() { "no files".to_string() } else { names.join(", ") }
    ))
}
