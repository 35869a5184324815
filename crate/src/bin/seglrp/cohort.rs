//! `seglrp cohort`: the relevance analysis of Chlebus et al. 2019 over a folder of studies —
//! per patient, the region map's per-sequence shares, Dice and conservation in one CSV, the
//! parallel-coordinates plot, and a six-panel figure. Split across machines: parts.rs.
//!
//! Each patient's results land in `OUT/patients/<id>.json`, written last and atomically: a
//! patient with that file (and the same settings) is finished, so an interrupted run resumes
//! where it stopped, and the CSV and plots are always rebuilt from those files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use burn::prelude::Device;
use clap::Subcommand;
use seglrp::io::nifti;
use seglrp::io::study::FILE_STEMS;
use seglrp::io::volume::Volume;
use seglrp::model::weights;
use seglrp::model::Graph;
use seglrp::spatial::region::{self, Selection};
use serde::{Deserialize, Serialize};

use crate::common::{class_choice, device, write, ClassChoice};
use crate::figure::{self, Line, Panels};
use crate::parts::{Share, Tracker};
use crate::segment::{composite, segment};

/// `seglrp cohort DIR --out OUT [--parts N --part I]`, or `seglrp cohort merge|status OUT`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub run: Run,
}

#[derive(clap::Args)]
pub struct Run {
    /// The cohort: one folder per patient.
    #[arg(required = true)]
    pub dir: Option<PathBuf>,
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// The model (README "Models"): an nnU-Net or MONAI model folder, an .onnx file or U-Net
    /// safetensors; default: the bundled liver model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The U-Net configuration (JSON) of a --model whose file does not carry it.
    #[arg(long, requires = "model")]
    pub config: Option<PathBuf>,
    /// nnU-Net folds to use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub folds: Option<Vec<String>>,
    /// How every channel is normalised, overriding the model card (as for `explain`).
    #[arg(long, value_parser = crate::common::parse_normalisation)]
    pub normalisation: Option<seglrp::model::card::Normalisation>,
    /// The channel whose grid each study takes (as for `explain`; default: the finest).
    #[arg(long, value_name = "CHANNEL")]
    pub grid: Option<String>,
    /// Regions to explain, comma-separated: all (predicted tumour), tp, fn, fp (against each
    /// study's label).
    #[arg(long, default_value = "all", value_parser = parse_regions)]
    pub regions: Regions,
    /// Class to explain (the liver model: 0 background, 1 tumour); regions are chosen among the
    /// voxels of this class. "foreground": every foreground voxel for its own class.
    #[arg(long, default_value = "1", value_parser = class_choice)]
    pub class: ClassChoice,
    #[arg(long, default_value = COHORT_COMPOSITE)]
    pub composite: String,
    /// For an nnU-Net model folder: segment and explain as nnU-Net's predictor (its windows,
    /// mirrorings and the plans' spacing; README "Models"): labels as nnU-Net gives them, regions
    /// and figures on the grid its network reads.
    #[arg(long)]
    pub predictor: bool,
    /// With --predictor: without test-time mirroring.
    #[arg(long, requires = "predictor")]
    pub no_mirroring: bool,
    /// Run on the GPU (burn-wgpu: Vulkan, Metal or DirectX 12).
    #[arg(long)]
    pub gpu: bool,
    /// Patients processed at once (default: by cores and free memory; 1 with --gpu).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Also write each region's relevance as NIfTI to OUT/relevance/.
    #[arg(long)]
    pub save_relevance: bool,
    /// Also measure how faithful each region's maps are (as `seglrp faithfulness`: MoRF/LeRF
    /// region perturbation with the background baseline, per-channel values, a budget of twice
    /// the region) for --methods, and replace each channel in turn: OUT/faithfulness.csv (AOPC
    /// per patient, region and method), OUT/faithfulness.md (the means, and the rank correlation
    /// of shares with the score lost per channel) and OUT/faithfulness-<region>.svg (the curves).
    #[arg(long, conflicts_with = "predictor")]
    pub faithfulness: bool,
    /// With --faithfulness: the methods compared (as for `seglrp faithfulness`).
    #[arg(long, requires = "faithfulness", value_delimiter = ',', default_value = crate::faithfulness::DEFAULT_METHODS)]
    pub methods: Vec<String>,
    /// With --faithfulness: steps of each perturbation curve.
    #[arg(long, requires = "faithfulness", default_value_t = 20)]
    pub steps: usize,
    /// Redo patients that are already finished.
    #[arg(long)]
    pub force: bool,
    /// Split the cohort into N disjoint shares by a hash of each patient's folder name (adding
    /// patients moves no one between shares); with --part, run one of them. Parts share OUT and
    /// never write the table: `seglrp cohort merge OUT` does, once they are done.
    #[arg(long, value_name = "N", requires = "part", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub parts: Option<u32>,
    /// Which share to run, 0 to N−1 (Slurm: $SLURM_ARRAY_TASK_ID with --array=0-(N−1);
    /// Kubernetes Indexed Job: $JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "I", requires = "parts")]
    pub part: Option<u32>,
}

#[derive(Subcommand)]
pub enum Action {
    /// Build OUT/cohort.csv, the plots and OUT/summary.json from the finished patients of every
    /// part; refuses results made with different settings, and lists the patients that are
    /// missing or failed (exit 1 while there are any).
    ///
    /// Example: seglrp cohort merge shared/
    Merge { out: PathBuf },
    /// Per part: patients done, failed, still to do, and whether it is running; the failed
    /// patients' errors.
    ///
    /// Example: seglrp cohort status shared/
    Status {
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// The cohort's default composite: the page's and `explain`'s.
const COHORT_COMPOSITE: &str = seglrp::engine::DEFAULT_COMPOSITE;

#[derive(Clone, Debug)]
pub struct Regions(pub Vec<seglrp::spatial::region::Selection>);

fn parse_regions(s: &str) -> Result<Regions, String> {
    let v: Vec<_> = s.split(',').map(seglrp::spatial::region::Selection::parse).collect::<Result<_, _>>()?;
    let mut names: Vec<&str> = v.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    if names.len() != v.len() {
        return Err(format!("\"{s}\" names a region twice"));
    }
    Ok(Regions(v))
}

pub fn run(args: Args) -> Result<(), String> {
    let r = match args.action {
        Some(Action::Merge { out }) => return crate::parts::merge(&out),
        Some(Action::Status { out, json }) => return crate::parts::status(&out, json),
        None => args.run,
    };
    let share = match (r.parts, r.part) {
        (Some(n), Some(i)) if i >= n => {
            return Err(format!("--part {i}: parts are numbered 0 to {} (--parts {n})", n - 1))
        }
        (Some(n), Some(i)) => Some(Share { part: i, parts: n }),
        _ => None,
    };
    let dir = r.dir.clone().expect("clap requires DIR");
    let out = r.out.clone().expect("clap requires --out");
    cohort(&r, &dir, &out, share, &device(r.gpu, "cpu")?)
}

/// One study folder: `DIR/<id>/`, its NIfTI and DICOM files found at any depth (so `sub-01/anat/`
/// and a scanner's export work).
#[derive(Debug)]
pub struct StudyDir {
    pub id: String,
    pub files: Vec<PathBuf>,
}

fn is_nifti(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"].iter().any(|e| name.ends_with(e))
}

/// The study folders of `dir` in name order; loose NIfTI files beside them are named in the
/// warnings (a study is a folder), and `skip` (the output folder, when it lies inside) is left out.
pub fn discover(dir: &Path, skip: &Path) -> Result<(Vec<StudyDir>, Vec<String>), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort();
    let skip = skip.canonicalize().ok();
    let (mut studies, mut warnings) = (Vec::new(), Vec::new());
    for p in entries {
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if p.is_dir() {
            if hidden || (p.canonicalize().ok() == skip && skip.is_some()) {
                continue;
            }
            let mut files = Vec::new();
            crate::common::images_in(&p, &mut files);
            let id = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            studies.push(StudyDir { id, files });
        } else if is_nifti(&p) {
            warnings
                .push(format!("{}: ignored — put each study in a folder of its own (README \"Cohorts\")", p.display()));
        }
    }
    if studies.is_empty() {
        return Err(format!(
            "{}: no study folders (expected one folder per patient; README \"Cohorts\")",
            dir.display()
        ));
    }
    Ok((studies, warnings))
}

/// What was computed, so a resumed run can tell whether a finished patient still counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub model: String,
    /// FNV-1a of the weights file: a retrained model with the same name is a different model.
    pub model_hash: String,
    pub composite: String,
    /// `None`: all foreground.
    pub class: Option<usize>,
    pub regions: Vec<String>,
    /// The model's input channels, in its order (the table's share columns).
    #[serde(default = "liver_channels")]
    pub channels: Vec<String>,
    /// `--normalisation` (as JSON) and `--grid` where given: both change what the network reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    /// `--predictor`: nnU-Net's predictor, and its mirroring axes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<Vec<usize>>,
    /// `--faithfulness`: the methods and the curves' steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<(Vec<String>, usize)>,
}

fn liver_channels() -> Vec<String> {
    seglrp::io::volume::SEQUENCES.map(String::from).to_vec()
}

impl Settings {
    /// The same computation: the model by content (a path given another way is the same model).
    pub fn same_work(&self, other: &Settings) -> bool {
        let work = |s: &Settings| (s.model_hash.clone(), s.composite.clone(), s.class, s.regions.clone());
        let input = |s: &Settings| (s.normalisation.clone(), s.grid.clone(), s.predictor.clone());
        work(self) == work(other) && input(self) == input(other) && self.faithfulness == other.faithfulness
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionResult {
    pub region: String,
    pub voxels: usize,
    /// Present when the region is not empty.
    pub left_out: Option<usize>,
    /// Σ of the explained logits y_a over the kept voxels.
    pub explained_logits: Option<f32>,
    /// Σ_a ΣM_a / Σ_a y_a over the kept voxels: 1 when relevance is conserved.
    pub conservation: Option<f32>,
    pub shares: Option<Vec<f32>>,
    pub signed_shares: Option<Vec<f32>>,
    pub slice: Option<usize>,
    pub figure: Option<String>,
    /// Why the shares are missing ("empty region", "no positive relevance").
    #[serde(default)]
    pub note: Option<String>,
    /// `--faithfulness`: per method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<Vec<Faithfulness>>,
    /// `--faithfulness`: per channel, the fraction of the region's summed logit lost when the
    /// channel is replaced by its background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_lost: Option<Vec<f32>>,
}

/// One method's faithfulness for one region.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Faithfulness {
    pub method: String,
    pub aopc_morf: f32,
    pub aopc_lerf: f32,
    pub abpc: f32,
    pub dice_aopc_morf: f32,
    pub shares: Option<Vec<f32>>,
    /// The curves as fractions of the unperturbed score, step by step.
    pub morf: Vec<f32>,
    pub lerf: Vec<f32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatientResult {
    pub patient: String,
    pub settings: Settings,
    pub files: Vec<String>,
    pub dims: [usize; 3],
    pub tumour_voxels: usize,
    pub labelled_voxels: Option<usize>,
    pub dice: Option<f32>,
    pub seconds: f64,
    pub regions: Vec<RegionResult>,
    /// NaN/infinite voxels per sequence that were set to 0 (docs/nifti.md, "Bad input").
    #[serde(default)]
    pub non_finite: Vec<usize>,
}

/// What identifies a model's content: a file's bytes; for a folder, its card (architecture,
/// parameters, channels, classes) and the size and name of every file it was read from.
fn model_identity(path: &Path, card: &seglrp::model::ModelCard) -> Result<Vec<u8>, String> {
    if !path.is_dir() {
        return std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let mut id = serde_json::to_vec(card).expect("plain JSON");
    for source in &card.sources {
        let size = std::fs::metadata(source).map(|m| m.len()).unwrap_or(0);
        id.extend(format!("{source}:{size};").bytes());
    }
    Ok(id)
}

fn fnv1a(bytes: &[u8]) -> String {
    format!("{:016x}", crate::parts::fnv1a(bytes))
}

/// Reason column of an empty region.
const EMPTY_REGION: &str = "empty region";

/// Study size the worker count is planned for (a large abdominal MRI: 256×256×96); studies are
/// not read ahead just to count their voxels.
const PLANNING_VOXELS: usize = 256 * 256 * 96;

/// Workers that fit: one per two cores (burn already spreads one pass over every core; a
/// second patient fills the single-threaded stretches), fewer when memory is short.
fn default_jobs(voxels: usize, net: &Graph) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Activations of the whole-volume pass plus the LRP pass over them; measured ~20 floats per
    // base channel and voxel with the bundled model at 128×96×40.
    let base = net.validate().ok().and_then(|c| c.get(1).copied()).unwrap_or(8);
    let per_patient = voxels as u64 * base as u64 * 4 * 24;
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(4 << 30);
    ((available / 2 / per_patient.max(1)) as usize).clamp(1, (cores / 2).max(1))
}

struct Context<'a> {
    args: &'a Run,
    /// Where results go (`--out`).
    out: &'a Path,
    settings: Settings,
    model: crate::common::Model,
}

/// One patient segmented and its regions explained, on the grid the maps are on.
struct Explained {
    /// What the figures show: the study (one pass), or the study as nnU-Net's network reads it.
    volume: Volume,
    /// Per region, its voxels (1 = in); the non-empty ones explained in `maps`, in order.
    areas: Vec<Vec<u8>>,
    maps: Vec<seglrp::engine::RegionExplanation>,
    /// `--faithfulness`: per non-empty region, in order.
    faithfulness: Vec<seglrp::faithfulness::Evaluation>,
    /// The predicted class of each voxel of the study, and the study itself.
    mask: Vec<u8>,
    study: seglrp::io::study::Study,
}

/// The regions of `args` among `pred` (and `label`), each needing a label refused without one.
fn areas(args: &Run, pred: &[u8], label: Option<&[u8]>, dims: [usize; 3]) -> Result<Vec<Vec<u8>>, String> {
    let mut areas = Vec::new();
    for sel in &args.regions.0 {
        if sel.needs_label() && label.is_none() {
            return Err(format!(
                "region \"{}\" needs a tumour label, and the folder has none (a file named label/seg/mask…)",
                sel.name()
            ));
        }
        areas.push(sel.classes_of(pred, label, args.class.0, dims)?);
    }
    Ok(areas)
}

fn non_empty(areas: &[Vec<u8>]) -> Vec<&[u8]> {
    areas.iter().filter(|a| a.iter().any(|v| *v != 0)).map(|a| &a[..]).collect()
}

/// The engine's one pass over the study on its own grid (the page's numbers).
fn explain_one_pass(
    args: &Run,
    study: seglrp::io::study::Study,
    net: &crate::common::Model,
    device: &Device,
    step: &dyn Fn(&str),
) -> Result<Explained, String> {
    step("segmenting");
    let s = segment(net, study, device)?;
    let composite = composite(&args.composite, &s.prepared)?;
    let areas = areas(args, &s.mask, s.study.label.as_deref(), s.study.volume.dims)?;
    let regions = non_empty(&areas);
    step(&format!("explaining {} region(s)", regions.len()));
    let maps = pollster::block_on(seglrp::engine::explain_regions(
        &s.prepared,
        &regions,
        args.class.0,
        &composite,
        |_, _| {},
    ))?;
    let mut faithfulness = Vec::new();
    if args.faithfulness {
        let methods = crate::faithfulness::methods(&args.methods, &s.prepared)?;
        let options = seglrp::faithfulness::EvaluationOptions {
            perturbation: seglrp::faithfulness::PerturbationOptions { steps: args.steps, ..Default::default() },
            ablation: true,
            ..Default::default()
        };
        for (i, area) in regions.iter().enumerate() {
            step(&format!("faithfulness of region {} of {}", i + 1, regions.len()));
            let probe = pollster::block_on(seglrp::faithfulness::Probe::new(&s.prepared, area, args.class.0))?;
            faithfulness.push(pollster::block_on(seglrp::faithfulness::evaluate(
                &probe,
                &methods,
                &options,
                &mut |_, _| {},
            ))?);
        }
    }
    Ok(Explained { volume: s.study.volume.clone(), areas, maps, faithfulness, mask: s.mask, study: s.study })
}

/// nnU-Net's predictor (`--predictor`): labels as nnU-Net gives them, regions and maps on the
/// grid its network reads (the label moved there as nnU-Net moves segmentations).
fn explain_predictor(
    args: &Run,
    study: seglrp::io::study::Study,
    net: &crate::common::Model,
    device: &Device,
    step: &dyn Fn(&str),
) -> Result<Explained, String> {
    use seglrp::spatial::{predictor, sliding};
    let (Some(how), Some(patch)) = (&net.card.inference, net.card.patch_size) else {
        return Err("--predictor needs an nnU-Net model folder whose plans say how nnU-Net runs it".into());
    };
    step("segmenting as nnU-Net");
    let input = predictor::network_input(&net.card, net.normalisation.as_ref(), &study.volume)?;
    let mirror = if args.no_mirroring { vec![] } else { how.mirror_axes.clone() };
    let patches = sliding::Patches::new(patch);
    let b = pollster::block_on(sliding::blend(&net.graph, &input.volume, patches, &mirror, device, |_, _| {}))?;
    let mask = predictor::labels_on_study(&input, &b, &net.card, &study.volume)?;
    let on_grid = sliding::argmax(&b.half, b.classes);
    let label = study.label.as_ref().map(|l| predictor::label_on_grid(l, &input, &net.card, &study.volume));
    let areas = areas(args, &on_grid, label.as_deref(), input.volume.dims)?;
    let blend = seglrp::engine::Blend {
        graph: &net.graph,
        input: &input.volume,
        patches,
        mirror: &mirror,
        composite: &args.composite,
    };
    let mut maps = Vec::new();
    for area in non_empty(&areas) {
        step(&format!("explaining region {} of {}", maps.len() + 1, non_empty(&areas).len()));
        maps.push(pollster::block_on(seglrp::engine::explain_blended_region(
            &blend,
            area,
            args.class.0.expect("checked before the cohort starts"),
            device,
            |_, _| {},
        ))?);
    }
    Ok(Explained { volume: input.volume, areas, maps, faithfulness: Vec::new(), mask, study })
}

fn analyse(
    ctx: &Context,
    study_dir: &StudyDir,
    net: &crate::common::Model,
    device: &Device,
    step: &dyn Fn(&str),
) -> Result<PatientResult, String> {
    let args = ctx.args;
    if study_dir.files.is_empty() {
        return Err("no NIfTI files in the folder".into());
    }
    let started = Instant::now();
    step("reading");
    let study = crate::common::open_for(net, &study_dir.files, &[], args.grid.as_deref())?;
    let e = if args.predictor {
        explain_predictor(args, study, net, device, step)?
    } else {
        explain_one_pass(args, study, net, device, step)?
    };
    let vol = &e.volume;
    let mut explanations = e.maps.into_iter();
    let mut evaluations = e.faithfulness.into_iter();
    let mut regions = Vec::new();
    for (sel, area) in args.regions.0.iter().zip(&e.areas) {
        let voxels = area.iter().filter(|v| **v != 0).count();
        if voxels == 0 {
            regions.push(RegionResult {
                region: sel.name().into(),
                voxels,
                left_out: None,
                explained_logits: None,
                conservation: None,
                shares: None,
                signed_shares: None,
                slice: None,
                figure: None,
                note: Some(EMPTY_REGION.into()),
                faithfulness: None,
                logit_lost: None,
            });
            continue;
        }
        let e = explanations.next().expect("one explanation per non-empty region");
        let slice = region::centre_slice(area, vol.dims).expect("the region is not empty");
        let shares = e.shares.clone();
        let figure_name = format!("figures/{}-{}.png", study_dir.id, sel.name());
        step(&format!("drawing region {}", sel.name()));
        let svg = figure::panels_svg(&Panels {
            volume: vol,
            channels: &ctx.settings.channels,
            relevance: &e.relevance,
            region: area,
            slice,
            shares: shares.clone(),
            title: format!("{} — region \"{}\" ({} voxels), {}", study_dir.id, sel.name(), voxels, args.composite),
        })?;
        write(&ctx.out.join(&figure_name), &figure::png(&svg)?)?;
        if args.save_relevance {
            let rel = Volume { data: e.relevance, ..vol.clone() };
            write(
                &ctx.out.join(format!("relevance/{}-{}.nii.gz", study_dir.id, sel.name())),
                &nifti::write_nifti(&rel, true),
            )?;
        }
        regions.push(RegionResult {
            region: sel.name().into(),
            voxels,
            left_out: Some(e.left_out),
            explained_logits: Some(e.explained_logits),
            conservation: Some(e.conservation),
            shares,
            signed_shares: e.signed_shares.clone(),
            slice: Some(slice),
            figure: Some(figure_name),
            note: e.no_shares.map(String::from),
            logit_lost: None,
            faithfulness: None,
        });
        if let Some(f) = evaluations.next() {
            let r = regions.last_mut().expect("just pushed");
            r.logit_lost = f.ablation.as_ref().map(|a| a.iter().map(|a| a.logit_drop).collect());
            let relative = |c: &[seglrp::faithfulness::Score]| {
                let s0 = c[0].logit.abs().max(f32::MIN_POSITIVE);
                c.iter().map(|s| s.logit / s0).collect()
            };
            r.faithfulness = Some(
                f.methods
                    .iter()
                    .map(|m| Faithfulness {
                        method: m.method.clone(),
                        aopc_morf: m.curves.aopc_morf,
                        aopc_lerf: m.curves.aopc_lerf,
                        abpc: m.curves.abpc,
                        dice_aopc_morf: m.curves.dice_aopc_morf,
                        shares: m.shares.clone(),
                        morf: relative(&m.curves.morf),
                        lerf: relative(&m.curves.lerf),
                    })
                    .collect(),
            );
        }
    }
    let of_class = |l: &[u8], k: usize| -> Vec<u8> { l.iter().map(|v| u8::from(*v as usize == k)).collect() };
    // The voxels of the class explained (of any foreground class for all foreground).
    let of_choice = |v: u8| args.class.0.map_or(v != 0, |c| v as usize == c);
    let label = e.study.label.as_deref();
    Ok(PatientResult {
        patient: study_dir.id.clone(),
        settings: ctx.settings.clone(),
        files: e.study.sources.clone(),
        dims: e.study.volume.dims,
        tumour_voxels: e.mask.iter().filter(|v| of_choice(**v)).count(),
        labelled_voxels: label.map(|l| l.iter().filter(|v| of_choice(**v)).count()),
        // Of the first foreground class, as `segment` reports it.
        dice: label.and_then(|l| seglrp::spatial::metrics::dice(&of_class(&e.mask, 1), &of_class(l, 1))),
        seconds: started.elapsed().as_secs_f64(),
        regions,
        non_finite: e.study.non_finite.clone(),
    })
}

fn done_line(r: &PatientResult, n: usize, of: usize) -> String {
    let regions: Vec<String> = r
        .regions
        .iter()
        .map(|g| match &g.shares {
            Some(sh) => {
                let sh: Vec<String> = sh.iter().map(|v| format!("{v:.3}")).collect();
                format!("{} {} voxels, shares {}", g.region, g.voxels, sh.join("/"))
            }
            None => format!("{}: {}", g.region, g.note.as_deref().unwrap_or(EMPTY_REGION)),
        })
        .collect();
    let dice = r.dice.map(|d| format!(", Dice {d:.3}")).unwrap_or_default();
    format!("[{n}/{of}] {}: {:.1} s{dice}; {}", r.patient, r.seconds, regions.join("; "))
}

fn result_path(out: &Path, id: &str) -> PathBuf {
    out.join("patients").join(format!("{id}.json"))
}

/// A finished patient's results, when they were computed with these settings.
fn finished(out: &Path, id: &str, settings: &Settings) -> Option<PatientResult> {
    let r: PatientResult = serde_json::from_slice(&std::fs::read(result_path(out, id)).ok()?).ok()?;
    r.settings.same_work(settings).then_some(r)
}

fn csv_number<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The share columns' names: the liver model's file stems, any other model's channel names in
/// lower case with `_` for anything but letters and digits.
fn stems(channels: &[String]) -> Vec<String> {
    if channels.iter().map(String::as_str).eq(seglrp::io::volume::SEQUENCES) {
        return FILE_STEMS.map(String::from).to_vec();
    }
    channels
        .iter()
        .map(|c| c.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_lowercase() } else { '_' }).collect())
        .collect()
}

/// The cohort table: one row per patient and region.
pub fn csv(results: &[PatientResult]) -> String {
    let channels = results.first().map_or_else(liver_channels, |p| p.settings.channels.clone());
    let mut s = String::from("patient,region,voxels,left_out,dice,explained_logits,conservation");
    for prefix in ["share", "signed_share"] {
        for stem in stems(&channels) {
            s += &format!(",{prefix}_{stem}");
        }
    }
    // Why share cells are empty; NaN/infinite voxels set to 0 in the patient's sequences.
    s += ",note,non_finite_voxels\n";
    for p in results {
        for r in &p.regions {
            let quoted = if p.patient.contains([',', '"']) {
                format!("\"{}\"", p.patient.replace('"', "\"\""))
            } else {
                p.patient.clone()
            };
            s += &format!(
                "{quoted},{},{},{},{},{},{}",
                r.region,
                r.voxels,
                csv_number(r.left_out),
                csv_number(p.dice),
                csv_number(r.explained_logits),
                csv_number(r.conservation)
            );
            for shares in [&r.shares, &r.signed_shares] {
                for k in 0..channels.len() {
                    s += &format!(",{}", csv_number(shares.as_ref().map(|v| v[k])));
                }
            }
            let note = r.note.clone().or_else(|| r.shares.is_none().then(|| EMPTY_REGION.to_string()));
            s += &format!(",{},{}\n", note.unwrap_or_default(), p.non_finite.iter().sum::<usize>());
        }
    }
    s
}

/// The table and the plots of `results` (one settings' patients, in the table's order).
pub fn write_summary(out: &Path, settings: &Settings, results: &[PatientResult]) -> Result<Vec<PathBuf>, String> {
    let mut written = vec![out.join("cohort.csv")];
    write(&written[0], csv(results).as_bytes())?;
    if settings.faithfulness.is_some() {
        written.extend(crate::faithfulness::write_cohort(out, settings, results)?);
    }
    for name in &settings.regions {
        let sel = Selection::parse(name)?;
        let lines: Vec<Line> = results
            .iter()
            .filter_map(|p| {
                p.regions
                    .iter()
                    .find(|r| &r.region == name)
                    .and_then(|r| r.shares.clone())
                    .map(|shares| Line { name: p.patient.clone(), shares })
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let what = match &sel {
            Selection::AllPredicted => "predicted tumour".to_string(),
            Selection::TruePositive => "true positives".to_string(),
            Selection::FalseNegative => "false negatives".to_string(),
            Selection::FalsePositive => "false positives".to_string(),
            other => other.name().to_string(),
        };
        let title = format!("Relevance per input channel, {what}: {} patients, {}", lines.len(), settings.composite);
        let svg = figure::parallel_svg(&lines, &settings.channels, &title);
        let base = out.join(format!("parallel-{}", sel.name()));
        write(&base.with_extension("svg"), svg.as_bytes())?;
        write(&base.with_extension("png"), &figure::png(&svg)?)?;
        written.push(base.with_extension("svg"));
        written.push(base.with_extension("png"));
    }
    Ok(written)
}

/// The cohort in `dir` analysed into `out` as `args` say; `share`: only that part of it.
pub fn cohort(args: &Run, dir: &Path, out: &Path, share: Option<Share>, device: &Device) -> Result<(), String> {
    let gpu = args.gpu;
    let (mut studies, warnings) = discover(dir, out)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(share) = share {
        let all = studies.len();
        studies.retain(|s| share.holds(&s.id));
        eprintln!("part {} of {}: {} of the cohort's {all} patients", share.part, share.parts, studies.len());
    }
    // Refuse a bad model before any patient is touched.
    let options = crate::common::StudyOptions {
        model: args.model.clone(),
        config: args.config.clone(),
        folds: args.folds.clone(),
        normalisation: args.normalisation.clone(),
        role: vec![],
        grid: args.grid.clone(),
        backend: "cpu".into(),
        gpu,
    };
    let model = options.model(device)?;
    args.class.name(&model.card.classes)?;
    if args.predictor && args.class.0.is_none() {
        return Err("--predictor explains one class at a time: give --class N".into());
    }
    let (model_name, model_hash) = match &args.model {
        Some(p) => (p.display().to_string(), fnv1a(&model_identity(p, &model.card)?)),
        None => ("bundled".to_string(), fnv1a(weights::BUNDLED)),
    };
    let settings = Settings {
        model: model_name,
        model_hash,
        composite: args.composite.clone(),
        class: args.class.0,
        regions: args.regions.0.iter().map(|r| r.name().to_string()).collect(),
        channels: model.card.channels.iter().map(|c| c.name.clone()).collect(),
        normalisation: args.normalisation.as_ref().map(|n| serde_json::to_string(n).expect("plain JSON")),
        grid: args.grid.clone(),
        faithfulness: args.faithfulness.then(|| (args.methods.clone(), args.steps)),
        predictor: match (&model.card.inference, args.predictor) {
            (Some(i), true) => Some(if args.no_mirroring { vec![] } else { i.mirror_axes.clone() }),
            (None, true) => {
                return Err("--predictor needs an nnU-Net model folder whose plans say how nnU-Net runs it \
                            (README \"Models\")"
                    .into())
            }
            _ => None,
        },
    };
    for sub in ["patients", "figures"]
        .iter()
        .chain(args.save_relevance.then_some(&"relevance"))
        .chain(share.is_some().then_some(&"parts"))
    {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let todo: Vec<&StudyDir> =
        studies.iter().filter(|s| args.force || finished(out, &s.id, &settings).is_none()).collect();
    let skipped = studies.len() - todo.len();
    if skipped > 0 {
        eprintln!("{skipped} patient(s) already done with these settings: skipped (--force redoes them)");
    }
    let tracker = match share {
        Some(share) => {
            let assigned = studies.iter().map(|s| s.id.clone()).collect();
            let to_do: std::collections::HashSet<&str> = todo.iter().map(|t| t.id.as_str()).collect();
            let before = studies.iter().filter(|s| !to_do.contains(s.id.as_str())).map(|s| s.id.clone()).collect();
            Some(Tracker::start(out, share, assigned, before)?)
        }
        None => None,
    };
    let jobs = if gpu {
        args.jobs.unwrap_or(1)
    } else {
        args.jobs.unwrap_or_else(|| default_jobs(PLANNING_VOXELS, &model.graph))
    }
    .clamp(1, todo.len().max(1));
    let ctx = Context { args, out, settings: settings.clone(), model };
    let pb = crate::progress::bar(todo.len() as u64, "cohort");
    pb.set_message(format!("{jobs} at a time"));
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                // Each worker its own copy (a graph's tensors are shared handles: cheap).
                let net = ctx.model.clone();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(study_dir) = todo.get(i) else { break };
                    let step = |what: &str| pb.set_message(format!("{}: {what}", study_dir.id));
                    // A status file that cannot be written is reported, not fatal: the results are.
                    let track = |r: Result<(), String>| {
                        if let Err(e) = r {
                            pb.println(format!("warning: the part's status file: {e}"));
                        }
                    };
                    if let Some(t) = &tracker {
                        track(t.begin(&study_dir.id));
                    }
                    let outcome = analyse(&ctx, study_dir, &net, device, &step).and_then(|r| {
                        let text = serde_json::to_string_pretty(&r).expect("plain JSON");
                        write(&result_path(ctx.out, &study_dir.id), text.as_bytes())?;
                        Ok(r)
                    });
                    if let Some(t) = &tracker {
                        track(t.end(&study_dir.id, outcome.as_ref().err().map(|e| e.as_str())));
                    }
                    match outcome {
                        // Without a terminal (CI, nohup) the bar is hidden: a line per patient instead.
                        Ok(r) if pb.is_hidden() => eprintln!("{}", done_line(&r, i + 1, todo.len())),
                        Ok(_) => {}
                        Err(e) => {
                            pb.println(format!("{}: error: {e}", study_dir.id));
                            failures.lock().expect("no panics hold it").push((study_dir.id.clone(), e));
                        }
                    }
                    pb.inc(1);
                }
            });
        }
    });
    pb.finish_and_clear();
    let results: Vec<PatientResult> = studies.iter().filter_map(|s| finished(out, &s.id, &settings)).collect();
    let failures = failures.into_inner().expect("no panics hold it");
    if let (Some(t), Some(share)) = (&tracker, share) {
        t.finish()?;
        eprintln!(
            "part {} of {}: {} of its {} patients analysed ({} this run, {skipped} from before); `seglrp cohort merge \
                {}` builds the table once every part is done",
            share.part,
            share.parts,
            results.len(),
            studies.len(),
            results.len() - skipped.min(results.len()),
            out.display()
        );
        if !failures.is_empty() {
            let list = failures.iter().map(|(id, e)| format!("  {id}: {e}")).collect::<Vec<_>>().join("\n");
            return Err(format!("{} of the part's {} studies failed:\n{list}", failures.len(), studies.len()));
        }
        return Ok(());
    }
    let written = write_summary(out, &settings, &results)?;
    eprintln!(
        "{} of {} patients analysed ({} this run, {skipped} from before); wrote {}",
        results.len(),
        studies.len(),
        results.len() - skipped.min(results.len()),
        written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    if !failures.is_empty() {
        let list = failures.iter().map(|(id, e)| format!("  {id}: {e}")).collect::<Vec<_>>().join("\n");
        return Err(format!(
            "{} of {} studies failed (the others are in the table):\n{list}",
            failures.len(),
            studies.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_folders_are_found_at_any_depth_and_the_output_is_left_out() {
        let dir = std::env::temp_dir().join(format!("seglrp-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in [
            "sub-02/anat/sub-02_T2w.nii.gz",
            "sub-01/t2.nii",
            "sub-01/notes.txt",
            ".git/x.nii",
            "results/patients/a.nii",
            "loose.nii.gz",
        ] {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        let (studies, warnings) = discover(&dir, &dir.join("results")).unwrap();
        let ids: Vec<&str> = studies.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["empty", "sub-01", "sub-02"]);
        assert_eq!(studies[1].files, [dir.join("sub-01/t2.nii")]);
        assert_eq!(studies[2].files, [dir.join("sub-02/anat/sub-02_T2w.nii.gz")]);
        assert!(studies[0].files.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("loose.nii.gz") && warnings[0].contains("folder of its own"));
        assert!(discover(&dir.join("empty"), &dir).unwrap_err().contains("no study folders"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_table_quotes_names_and_leaves_empty_regions_blank() {
        let settings = Settings {
            model: "m".into(),
            model_hash: "1".into(),
            composite: "Epsilon".into(),
            class: Some(1),
            regions: vec!["all".into(), "fn".into()],
            channels: liver_channels(),
            normalisation: None,
            grid: None,
            predictor: None,
            faithfulness: None,
        };
        let region = |name: &str, shares: Option<Vec<f32>>| RegionResult {
            region: name.into(),
            voxels: if shares.is_some() { 3 } else { 0 },
            left_out: shares.as_ref().map(|_| 0),
            explained_logits: shares.as_ref().map(|_| 2.5),
            conservation: shares.as_ref().map(|_| 0.75),
            signed_shares: shares.clone(),
            shares,
            slice: None,
            figure: None,
            note: None,
            faithfulness: None,
            logit_lost: None,
        };
        let p = PatientResult {
            patient: "a,\"b\"".into(),
            settings: settings.clone(),
            files: vec![],
            dims: [1, 1, 1],
            tumour_voxels: 3,
            labelled_voxels: None,
            dice: None,
            seconds: 1.0,
            regions: vec![
                region("all", Some(vec![0.5, 0.1, 0.1, 0.1, 0.1, 0.1])),
                region("fn", None),
                RegionResult { voxels: 4, note: Some("no positive relevance".into()), ..region("tp", None) },
            ],
            non_finite: vec![0, 7, 0, 0, 0, 0],
        };
        let table = csv(&[p]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[1], "\"a,\"\"b\"\"\",all,3,0,,2.5,0.75,0.5,0.1,0.1,0.1,0.1,0.1,0.5,0.1,0.1,0.1,0.1,0.1,,7");
        assert_eq!(lines[2], "\"a,\"\"b\"\"\",fn,0,,,,,,,,,,,,,,,,,empty region,7");
        assert_eq!(lines[3], "\"a,\"\"b\"\"\",tp,4,,,,,,,,,,,,,,,,,no positive relevance,7");
        assert_eq!(lines[0].split(',').count(), 7 + 12 + 2);
        let moved = Settings { model: "/elsewhere/m".into(), ..settings.clone() };
        assert!(settings.same_work(&moved), "the same weights given by another path");
        assert!(!settings.same_work(&Settings { composite: "EpsilonGammaBox".into(), ..settings.clone() }));
        assert!(!settings.same_work(&Settings { model_hash: "2".into(), ..settings.clone() }));
        assert!(!settings.same_work(&Settings { grid: Some("ADC".into()), ..settings.clone() }));
        assert!(!settings.same_work(&Settings { normalisation: Some("\"ZScore\"".into()), ..settings.clone() }));
        assert!(!settings.same_work(&Settings { predictor: Some(vec![0, 1, 2]), ..settings.clone() }));
        let faithful = Settings { faithfulness: Some((vec!["random".into()], 20)), ..settings.clone() };
        assert!(!settings.same_work(&faithful));
    }
}
