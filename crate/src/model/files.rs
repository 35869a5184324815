//! A model's files wherever they lie: a folder on disk (the command line), or the files of a drop
//! in the page — chosen one by one, a dropped folder (names with their relative paths), or a
//! `.zip` of the folder as `nnUNetv2_export_model_to_zip` writes it. The importers ask for files by
//! their path inside the model folder (`fold_0/checkpoint_final.pth`), so one importer serves both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The files of one model folder.
pub struct ModelFiles {
    place: Place,
    /// The model folder's own name (nnU-Net's `Trainer__Plans__configuration`), if known.
    pub name: Option<String>,
}

enum Place {
    Disk(PathBuf),
    /// Path inside the model folder → bytes, taken out when read (checkpoints are large).
    Memory {
        files: BTreeMap<String, Vec<u8>>,
        label: String,
    },
}

/// Files a model folder may need: the rest of a dropped folder (nnU-Net's validation outputs,
/// logs, plots) is not read.
pub fn is_model_part(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".json", ".pth", ".pt", ".safetensors", ".onnx"].iter().any(|e| n.ends_with(e))
}

/// Files whose presence marks the folder a model lies in (nnU-Net's, a MONAI bundle's, or a
/// MONAI `network.json`), as paths relative to that folder.
const MARKERS: [&str; 3] = ["plans.json", "configs/inference.json", "network.json"];

/// Whether a `.zip` holds a model (a marker file, or weights) rather than a study: the page's
/// drop zone takes both.
pub fn zip_holds_model(bytes: &[u8]) -> bool {
    let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else { return false };
    let names: Vec<String> = archive.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        let marker = MARKERS.iter().any(|m| n == *m || n.ends_with(&format!("/{m}")));
        marker || [".pth", ".pt", ".safetensors", ".onnx"].iter().any(|e| n.ends_with(e))
    })
}

impl ModelFiles {
    /// The folder at `path`.
    pub fn disk(path: &Path) -> ModelFiles {
        let name = path.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        ModelFiles { place: Place::Disk(path.to_path_buf()), name }
    }

    /// The files of a drop (`(name, bytes)`; names may carry the dropped folder's relative paths),
    /// `.zip` archives unpacked. The model folder is the shallowest one holding a marker file
    /// (`plans.json`, `configs/inference.json`, `network.json`); where an nnU-Net archive holds
    /// several configurations, `3d_fullres` is taken, else the user is asked to give one.
    pub fn memory(given: Vec<(String, Vec<u8>)>) -> Result<ModelFiles, String> {
        let label = given.iter().map(|(n, _)| n.as_str()).find(|n| n.to_ascii_lowercase().ends_with(".zip"));
        let label = label.or(given.first().map(|(n, _)| n.as_str())).unwrap_or("the dropped files").to_string();
        let mut all = BTreeMap::new();
        for (name, bytes) in given {
            if name.to_ascii_lowercase().ends_with(".zip") {
                unzip(&name, &bytes, &mut all)?;
            } else if is_model_part(&name) {
                all.insert(crate::io::archive::clean(&name), bytes);
            }
        }
        let mut roots: Vec<String> = all
            .keys()
            .filter_map(|k| MARKERS.iter().find_map(|m| k.strip_suffix(*m)))
            .filter(|r| r.is_empty() || r.ends_with('/'))
            .map(str::to_string)
            .collect();
        roots.sort_by_key(|r| (r.matches('/').count(), r.clone()));
        roots.dedup();
        // A bundle's `configs/` also ends in a marker's parent: keep only the shallowest level.
        let depth = roots.first().map(|r| r.matches('/').count());
        roots.retain(|r| Some(r.matches('/').count()) == depth);
        let root = match roots.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            many => match many.iter().find(|r| r.trim_end_matches('/').ends_with("__3d_fullres")) {
                Some(r) => r.clone(),
                None => {
                    return Err(format!(
                        "{label} holds several models ({}): drop the folder of the one to explain",
                        many.iter().map(|r| r.trim_end_matches('/')).collect::<Vec<_>>().join(", ")
                    ))
                }
            },
        };
        let files = all.into_iter().filter_map(|(k, v)| Some((k.strip_prefix(&root)?.to_string(), v))).collect();
        let name = root.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).map(str::to_string);
        Ok(ModelFiles { place: Place::Memory { files, label }, name })
    }

    /// Whether the file `rel` is there.
    pub fn has(&self, rel: &str) -> bool {
        match &self.place {
            Place::Disk(dir) => dir.join(rel).is_file(),
            Place::Memory { files, .. } => files.contains_key(rel),
        }
    }

    /// The folders directly inside `rel` ("" = the model folder), sorted.
    pub fn folders(&self, rel: &str) -> Vec<String> {
        let mut out: Vec<String> = match &self.place {
            Place::Disk(dir) => std::fs::read_dir(dir.join(rel))
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Place::Memory { files, .. } => {
                let prefix = if rel.is_empty() { String::new() } else { format!("{}/", rel.trim_end_matches('/')) };
                files
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix)?.split_once('/').map(|(d, _)| d.to_string()))
                    .collect()
            }
        };
        out.sort();
        out.dedup();
        out
    }

    /// The bytes of `rel`; from a drop they are handed over, not copied (a second read fails).
    pub fn take(&mut self, rel: &str) -> Result<Vec<u8>, String> {
        match &mut self.place {
            Place::Disk(dir) => {
                let p = dir.join(rel);
                std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
            }
            Place::Memory { files, label } => {
                files.remove(rel).ok_or_else(|| format!("{label}: no {rel} among the model's files"))
            }
        }
    }

    /// The JSON file `rel`.
    pub fn json(&self, rel: &str) -> Result<Value, String> {
        let parse = |bytes: &[u8]| {
            serde_json::from_slice(bytes).map_err(|e| format!("{} is not valid JSON: {e}", self.show(rel)))
        };
        match &self.place {
            Place::Disk(dir) => parse(&std::fs::read(dir.join(rel)).map_err(|e| format!("{}: {e}", self.show(rel)))?),
            Place::Memory { files, .. } => {
                parse(files.get(rel).ok_or_else(|| format!("{} is missing", self.show(rel)))?)
            }
        }
    }

    /// `rel` as messages and the model card name it: its path on disk, or within the drop.
    pub fn show(&self, rel: &str) -> String {
        match &self.place {
            Place::Disk(dir) => dir.join(rel).display().to_string(),
            Place::Memory { label, .. } if label.to_ascii_lowercase().ends_with(".zip") => format!("{label}: {rel}"),
            Place::Memory { .. } => rel.to_string(),
        }
    }

    /// The model folder in words, for messages.
    pub fn label(&self) -> String {
        match &self.place {
            Place::Disk(dir) => dir.display().to_string(),
            Place::Memory { label, .. } => label.clone(),
        }
    }
}

/// The model files inside the archive `name`, added to `out` by their paths in it.
fn unzip(name: &str, bytes: &[u8], out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let files = crate::io::archive::unzip(bytes, is_model_part, crate::io::archive::MAX_BYTES)
        .map_err(|e| format!("{name}: {e}"))?;
    out.extend(files);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::archive::zip_of;

    #[test]
    fn an_nnunet_archive_opens_at_its_model_folder() {
        let base = "Dataset001_X/nnUNetTrainer__nnUNetPlans__3d_fullres";
        let other = "Dataset001_X/nnUNetTrainer__nnUNetPlans__2d";
        let zip = zip_of(&[
            (&format!("{base}/plans.json"), b"{}"),
            (&format!("{base}/dataset.json"), b"{\"a\": 1}"),
            (&format!("{base}/fold_0/checkpoint_final.pth"), b"weights"),
            (&format!("{base}/fold_0/validation/case.nii.gz"), b"not read"),
            (&format!("{base}/fold_1/checkpoint_final.pth"), b"more"),
            (&format!("{other}/plans.json"), b"{}"),
        ]);
        let mut f = ModelFiles::memory(vec![("model.zip".into(), zip)]).unwrap();
        assert_eq!(f.name.as_deref(), Some("nnUNetTrainer__nnUNetPlans__3d_fullres"));
        assert!(f.has("plans.json") && f.has("fold_1/checkpoint_final.pth"));
        assert!(!f.has("fold_0/validation/case.nii.gz"));
        assert_eq!(f.folders(""), ["fold_0", "fold_1"]);
        assert_eq!(f.json("dataset.json").unwrap()["a"], 1);
        assert_eq!(f.take("fold_0/checkpoint_final.pth").unwrap(), b"weights");
        assert!(f.take("fold_0/checkpoint_final.pth").is_err());
        assert_eq!(f.show("plans.json"), "model.zip: plans.json");
    }

    #[test]
    fn several_models_without_3d_fullres_are_named() {
        let zip = zip_of(&[("a__2d/plans.json", b"{}"), ("a__3d_lowres/plans.json", b"{}")]);
        let e = ModelFiles::memory(vec![("m.zip".into(), zip)]).err().unwrap();
        assert!(e.contains("several models (a__2d, a__3d_lowres)"), "{e}");
    }

    #[test]
    fn files_chosen_one_by_one_are_the_model_folder() {
        let f = ModelFiles::memory(vec![
            ("inference.json".into(), b"{}".to_vec()),
            ("model.pt".into(), b"w".to_vec()),
            ("notes.txt".into(), b"skipped".to_vec()),
        ])
        .unwrap();
        assert!(f.has("inference.json") && f.has("model.pt") && !f.has("notes.txt"));
        assert_eq!(f.name, None);
        assert!(ModelFiles::memory(vec![("bad.zip".into(), b"not a zip".to_vec())]).err().unwrap().contains("bad.zip"));
    }
}
