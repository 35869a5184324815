//! What the subcommands share: files read as streams and put together as a study, the model
//! and the device, files written atomically, and the comma-separated numbers of the options.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use seglrp::backend;
pub use seglrp::engine::Model;
use seglrp::io::study::{self, FileReport, Role, Study};
use seglrp::model::card::Normalisation;
use seglrp::model::unet::UNet;
use seglrp::model::weights;
use seglrp::model::Graph;

/// How a study is read and which engine explains it.
#[derive(clap::Args)]
pub struct StudyOptions {
    /// The model (README "Models"): an nnU-Net trained-model folder, a MONAI model folder, an
    /// .onnx file, or SegLRP U-Net safetensors; default: the bundled liver model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The U-Net configuration (JSON, docs/models.md) of safetensors weights that do not carry
    /// it in their metadata (a plain `save_file(model.state_dict(), …)`).
    #[arg(long, requires = "model")]
    pub config: Option<PathBuf>,
    /// nnU-Net folds to use, comma-separated (default: every fold_N with a checkpoint).
    #[arg(long, value_delimiter = ',')]
    pub folds: Option<Vec<String>>,
    /// How every channel is normalised, overriding the model card: zscore, zscore-nonzero,
    /// rescale01, none (already normalised) or body (the liver demo's). Needed where the card
    /// does not say (MONAI, ONNX).
    #[arg(long, value_parser = parse_normalisation)]
    pub normalisation: Option<Normalisation>,
    /// Override a file's guessed role, as FILE=ROLE. ROLE is one of the model's channels (the
    /// bundled model: "T2", "T1 plain", "T1 20 s", "T1 60 s", "T1 120 s", "T1 15 min", or "all
    /// sequences"), "label" or "unused".
    #[arg(long, value_name = "FILE=ROLE")]
    pub role: Vec<String>,
    /// The channel whose grid the study takes: the others are resampled onto it (trilinear, in
    /// world coordinates; a label by nearest neighbour), and results are written on it. Default:
    /// the finest grid among the channels.
    #[arg(long, value_name = "CHANNEL")]
    pub grid: Option<String>,
    /// CPU backend ("cpu" = the default one).
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// Run on the GPU (burn-wgpu: Vulkan, Metal or DirectX 12) instead of the CPU.
    #[arg(long)]
    pub gpu: bool,
}

pub fn parse_normalisation(s: &str) -> Result<Normalisation, String> {
    Normalisation::parse(s).ok_or_else(|| format!("\"{s}\": one of zscore, zscore-nonzero, rescale01, none, body"))
}

impl StudyOptions {
    /// The model, the study of `files` as the model's card reads it (a bad file is reported
    /// before anything is computed) and the device.
    pub fn open(&self, files: &[PathBuf]) -> Result<(Study, Device, Model), String> {
        let device = device(self.gpu, &self.backend)?;
        let model = self.model(&device)?;
        let study = open_for(&model, files, &self.role, self.grid.as_deref())?;
        Ok((study, device, model))
    }

    pub fn model(&self, device: &Device) -> Result<Model, String> {
        let (graph, card) = match (&self.model, &self.config) {
            (Some(m), Some(c)) => {
                let config = read_config(c)?;
                let graph = Graph::from(&load_model(m, Some(c), device)?);
                let card = seglrp::model::open::unet_card(&graph, &config, &m.display().to_string());
                (graph, card)
            }
            (Some(m), None) => {
                let loaded = seglrp::model::open::open(m, self.folds.as_deref(), device)?;
                (loaded.graph, loaded.card)
            }
            (None, _) => {
                let m = Model::bundled(device)?;
                (m.graph, m.card)
            }
        };
        Ok(Model { graph, card, normalisation: self.normalisation.clone() })
    }
}

/// The study of `files` for `model`: the liver demo's six sequences, or the channels of the
/// model's card (README "Bringing your own study").
/// `grid`: the channel whose grid the study takes (default: the finest).
pub fn open_for(model: &Model, files: &[PathBuf], roles: &[String], grid: Option<&str>) -> Result<Study, String> {
    if model.is_liver() {
        if let Some(g) = grid {
            return Err(format!(
                "--grid {g}: the liver model's six sequences are resampled onto the finest of them; there is no choice"
            ));
        }
        let study = open_study(files, roles)?;
        for note in &study.resampled {
            eprintln!("note: {note}");
        }
        return Ok(study);
    }
    let reports = read_all(files);
    let chosen: Vec<(String, String)> = roles
        .iter()
        .map(|spec| {
            let (file, role) = spec.rsplit_once('=').ok_or_else(|| format!("--role {spec}: expected FILE=ROLE"))?;
            Ok((file.to_string(), role.to_string()))
        })
        .collect::<Result<_, String>>()?;
    let names: Vec<String> = model.card.channels.iter().map(|c| c.name.clone()).collect();
    let study = study::assemble_channels(&reports, &names, model.card.classes.len(), &chosen, grid.unwrap_or(""))?;
    for note in &study.resampled {
        eprintln!("note: {note}");
    }
    Ok(study)
}

/// The GPU (burn-wgpu) or the named CPU backend.
pub fn device(gpu: bool, cpu: &str) -> Result<Device, String> {
    if gpu {
        backend::gpu_device()
    } else {
        backend::cpu_device(cpu)
    }
}

/// `N` whole numbers separated by commas ("20,30,8"): voxels, boxes, shapes.
/// `--class`: a class index, or "foreground" (`None`: all foreground, each voxel explained for
/// its own class).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassChoice(pub Option<usize>);

pub fn class_choice(s: &str) -> Result<ClassChoice, String> {
    if s == "foreground" {
        return Ok(ClassChoice(None));
    }
    s.parse().map(|c| ClassChoice(Some(c))).map_err(|_| format!("\"{s}\": give a class index, or \"foreground\""))
}

impl ClassChoice {
    /// The class's name on the model's card (or [`seglrp::engine::ALL_FOREGROUND`]), once it
    /// is checked to be one of `classes`.
    pub fn name(self, classes: &[String]) -> Result<String, String> {
        match self.0 {
            Some(c) if c < classes.len() => Ok(classes[c].clone()),
            Some(c) => {
                Err(format!("--class {c}: the model's classes are 0 to {} ({})", classes.len() - 1, classes.join(", ")))
            }
            None if classes.len() < 2 => Err("--class foreground: the model has no foreground class".into()),
            None => Ok(seglrp::engine::ALL_FOREGROUND.to_string()),
        }
    }
}

pub fn numbers<const N: usize>(s: &str) -> Result<[usize; N], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("\"{s}\": {e}; expected {N} whole numbers separated by commas"))?;
    let n = v.len();
    v.try_into().map_err(|_| format!("\"{s}\" has {n} numbers; expected {N} separated by commas"))
}

/// safetensors weights with their configuration (in the file's metadata, or from `config`).
pub fn load_model(path: &Path, config: Option<&Path>, device: &burn::prelude::Device) -> Result<UNet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = match config {
        Some(c) => read_config(c)?,
        None => weights::config_of(&bytes)
            .ok_or_else(|| format!("{}: no configuration in the file; give --config", path.display()))?,
    };
    weights::from_safetensors(&config, &bytes, device).map_err(|e| format!("{}: {e}", path.display()))
}

/// A U-Net configuration from its JSON file.
pub fn read_config(path: &Path) -> Result<seglrp::model::unet::UNetConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: seglrp::model::unet::UNetConfig =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a U-Net configuration: {e}", path.display()))?;
    config.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

/// The model at `path` (README "Models"), or the bundled liver model, as a graph.
pub fn load(path: Option<&Path>, device: &Device) -> Result<Graph, String> {
    match path {
        Some(p) => Ok(seglrp::model::open::open(p, None, device)?.graph),
        None => seglrp::model::weights::bundled(device).map(|n| Graph::from(&n)).map_err(|e| e.to_string()),
    }
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    // Write then rename: an interrupted run never leaves a half-written file under the name.
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn gzip_wanted(path: &Path) -> bool {
    path.to_string_lossy().to_ascii_lowercase().ends_with(".gz")
}

/// Reads every file as a stream from disk: each is judged by its header before its voxels are
/// read, and a file that cannot be opened is that file's error only. A folder stands for the
/// images in it and its subfolders (a DICOM export, a study's NIfTI files).
pub fn read_all(paths: &[PathBuf]) -> Vec<FileReport> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = files.len();
            let ignored = images_in(p, &mut files);
            if ignored > 0 {
                eprintln!("note: {}: {ignored} files that are neither NIfTI nor DICOM were passed over", p.display());
            }
            if files.len() == before {
                eprintln!("warning: {}: no NIfTI or DICOM files in this folder", p.display());
            }
        } else {
            files.push(p.clone());
        }
    }
    let inputs: Vec<study::Input> = files.iter().map(|p| study::Input::path(p)).collect();
    study::read_files(&inputs)
}

/// The NIfTI, DICOM and .zip files under `dir` (sorted by path, hidden ones aside) into `out`;
/// returns how many other files were passed over.
pub fn images_in(dir: &Path, out: &mut Vec<PathBuf>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut ignored = 0;
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            ignored += images_in(&p, out);
            continue;
        }
        let nifti = [".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"].iter().any(|e| name.ends_with(e));
        // DICOM, .zip, .dcm.gz: by name, or by the first bytes where the name says nothing.
        let whole = || {
            let mut head = Vec::with_capacity(132);
            let read = std::fs::File::open(&p)
                .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 132), &mut head));
            read.is_ok() && study::read_whole(&name, &head)
        };
        if nifti || whole() {
            out.push(p);
        } else {
            ignored += 1;
        }
    }
    ignored
}

pub fn open_study(files: &[PathBuf], roles: &[String]) -> Result<Study, String> {
    let mut reports = read_all(files);
    for r in &reports {
        for note in r.info.iter().flat_map(|i| &i.notes) {
            eprintln!("warning: {}: {note}", r.name);
        }
    }
    let errors = study::blocking_errors(&reports);
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let chosen: Vec<(String, Role)> = roles
        .iter()
        .map(|spec| {
            let (file, role) = spec.rsplit_once('=').ok_or_else(|| format!("--role {spec}: expected FILE=ROLE"))?;
            let role = Role::parse(role).ok_or_else(|| format!("--role {spec}: unknown role \"{role}\""))?;
            Ok((file.to_string(), role))
        })
        .collect::<Result<_, String>>()?;
    let study = study::assemble_reports(&mut reports, &chosen).map_err(|e| e.to_string())?;
    for (c, n) in study.non_finite.iter().enumerate().filter(|(_, n)| **n > 0) {
        eprintln!(
            "warning: {}: {n} NaN or infinite voxels of {} were set to 0",
            study.sources[c],
            seglrp::io::volume::SEQUENCES[c]
        );
    }
    Ok(study)
}
