//! `seglrp`: the engine on the command line (CPU; GPU with `--gpu` in builds with the `gpu`
//! feature).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use seglrp::study::{self, FileReport, Role, Study};
use seglrp::unet::{UNet, UNetConfig};
use seglrp::{backend, engine, lrp, nifti, phantom, weights};

mod cohort;
mod explain;
mod figure;
mod parts;
mod phantoms;
mod progress;
mod training;

#[derive(Parser)]
#[command(name = "seglrp", version, about = "Layer-wise relevance propagation for 3D segmentation networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write one demo-cohort patient (default 1) as one 6-volume 4-D NIfTI, or with --dir as
    /// six 3-D files and the tumour label (t2, t1_plain, t1_20s, t1_60s, t1_120s, t1_15min,
    /// label .nii.gz).
    ///
    /// Examples: seglrp sample --out patient01.nii.gz
    ///           seglrp sample --patient 7 --dir patient07/
    Sample {
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
        patient: u16,
        /// Image the same patient on another grid, X,Y,Z voxels (same voxel size, centred on
        /// the liver; default 128,96,40): smaller studies for quick checks, larger ones for
        /// benchmarks.
        #[arg(long, value_parser = parse_voxel)]
        dims: Option<[usize; 3]>,
        #[arg(long, required_unless_present = "dir")]
        out: Option<PathBuf>,
        #[arg(long, conflicts_with = "out")]
        dir: Option<PathBuf>,
    },
    /// Write patients of the demo cohort (liver phantoms, generated from fixed seeds) as NIfTI:
    /// OUT/patientNN/{t2,t1_plain,t1_20s,t1_60s,t1_120s,t1_15min,label}.nii.gz and lesions.json.
    ///
    /// Example: seglrp phantoms --patients 1-20 --out cohort/
    Phantoms {
        #[arg(long)]
        out: PathBuf,
        /// 1-based patient numbers: "1-20", "3", "1,4,7".
        #[arg(long, default_value = "1-20", value_parser = phantoms::parse_patients)]
        patients: phantoms::Patients,
        /// Write .nii instead of .nii.gz.
        #[arg(long)]
        no_gzip: bool,
    },
    /// Train the liver U-Net on phantoms generated on the fly (native CPU, all cores); writes
    /// safetensors (with the configuration in its metadata) and checkpoints along the way.
    /// The defaults reproduce the bundled model.
    ///
    /// Example: seglrp train --out liver-unet.safetensors
    Train {
        #[arg(long)]
        out: PathBuf,
        /// Optimiser steps (default: the bundled model's).
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
        /// UNetConfig as JSON (README "Models"); default: the bundled model's architecture.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the weights so far every N steps (0: never).
        #[arg(long, default_value_t = 250)]
        checkpoint_every: usize,
    },
    /// Dice of the tumour segmentation on the held-out phantom cohort, with every sequence and
    /// with each single sequence zeroed out (which sequences the model needs).
    ///
    /// Example: seglrp evaluate --patients 1-20
    Evaluate {
        /// safetensors weights; default: the bundled model.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "1-20", value_parser = phantoms::parse_patients)]
        patients: phantoms::Patients,
        /// Skip the single-sequence ablation.
        #[arg(long)]
        no_ablation: bool,
        #[arg(long)]
        json: bool,
    },
    /// Describe NIfTI files: dimensions, datatype, voxel-to-world affine, orientation, scaling
    /// and value statistics. Exits non-zero when any file cannot be read.
    ///
    /// Example: seglrp info t2.nii.gz scan.hdr scan.img --json
    Info {
        /// .nii, .nii.gz, or .hdr with its .img.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON (one object per file) instead of text.
        #[arg(long)]
        json: bool,
        /// Also write each file's scaled values (float32 little-endian, file order) to
        /// DIR/<file name>.f32.
        #[arg(long, value_name = "DIR")]
        values: Option<PathBuf>,
    },
    /// Create or export model weights (safetensors with PyTorch parameter names).
    #[command(subcommand)]
    Model(ModelCommand),
    /// LRP on a raw input tensor, without normalisation: for checks against other
    /// implementations (tests/lrp_parity.py). Writes the relevance as float32 [C, D, H, W].
    ///
    /// Example: seglrp relevance --model w.safetensors --input x.f32 --shape 6,24,40,33 \
    ///          --voxel 10,20,16 --composite EpsilonGammaBox --out r.f32
    Relevance {
        /// safetensors written by `seglrp model` (its configuration is in the file), or with --config.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// float32 little-endian, [C, D, H, W] row-major.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, value_parser = parse_shape)]
        shape: [usize; 4],
        /// Output voxel as d,h,w (tensor axes).
        #[arg(long, value_parser = parse_voxel, required_unless_present = "region")]
        voxel: Option<[usize; 3]>,
        /// Instead of one voxel, the exact two-pass region map over the box d0,h0,w0,d1,h1,w1
        /// (start inclusive, end exclusive; README "LRP").
        #[arg(long, value_parser = parse_box, conflicts_with = "voxel")]
        region: Option<[usize; 6]>,
        #[arg(long, default_value_t = 1)]
        class: usize,
        /// Explain the logit difference class − VERSUS instead of the class's logit.
        #[arg(long, value_name = "VERSUS")]
        versus: Option<usize>,
        #[arg(long, default_value = engine::DEFAULT_COMPOSITE)]
        composite: String,
        #[arg(long)]
        out: PathBuf,
        /// Also write all logits (float32 [classes, D, H, W], cropped) here.
        #[arg(long)]
        logits: Option<PathBuf>,
        /// Run the forward pass and the LRP pass (or region map) N times and report the fastest
        /// in the JSON (`forward_s`, `lrp_s`, `region_s`; scripts/bench_zennit.py). The region
        /// map uses receptive-field cropping; the voxel pass runs on the whole volume.
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat: usize,
    },
    /// Segment a study: writes the predicted tumour as a NIfTI label (uint8, the study's affine)
    /// and prints a JSON summary (tumour voxels, components, Dice when a label file is given).
    ///
    /// Example: seglrp segment patient07/*.nii.gz --out patient07-seg.nii.gz
    Segment {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: StudyOptions,
        #[arg(long)]
        out: PathBuf,
        /// Sliding windows (128×128×32, half overlapping) instead of one whole-volume pass: for
        /// studies too large for memory. `explain` and the page use the whole-volume pass.
        #[arg(long)]
        windows: bool,
    },
    /// Segment a study and explain a voxel or a region with LRP; prints a JSON summary with the
    /// per-sequence shares of relevance.
    ///
    /// The study is one 4-D file with the six sequences as volumes, or six 3-D files named
    /// after their sequences (see the README), optionally with a label file.
    ///
    /// Examples: seglrp explain sample.nii.gz --voxel 20,30,8 --relevance relevance.nii.gz
    ///           seglrp explain patient07/*.nii.gz --region tp --composite EpsilonGammaBox --json tp.json
    ///           seglrp explain patient07/*.nii.gz --mask my-region.nii.gz
    Explain {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: StudyOptions,
        /// Voxel to explain, as x,y,z (NIfTI voxel indices); with --region component, a voxel
        /// of the tumour component to explain.
        #[arg(long, value_parser = parse_voxel)]
        voxel: Option<[usize; 3]>,
        /// Class to explain: 0 background, 1 tumour.
        #[arg(long, default_value_t = 1)]
        class: usize,
        /// Explain a region instead of one voxel, as the exact two-pass region map
        /// M_A = Σ M_a / ΣM_a: "component" (the predicted tumour's connected component that
        /// holds --voxel), "all" (all predicted tumour), or against the label file "tp", "fn",
        /// "fp" (true positives, false negatives, false positives).
        #[arg(long, value_parser = ["component", "all", "tp", "fn", "fp"], conflicts_with_all = ["bbox", "mask"])]
        region: Option<String>,
        /// Explain the voxels of a box x0,y0,z0,x1,y1,z1 (start inclusive, end exclusive).
        #[arg(long = "box", value_name = "X0,Y0,Z0,X1,Y1,Z1", value_parser = parse_box, conflicts_with = "mask")]
        bbox: Option<[usize; 6]>,
        /// Explain the voxels of a mask (NIfTI on the study's grid, non-zero = in the region).
        #[arg(long)]
        mask: Option<PathBuf>,
        /// LRP composite: Epsilon, EpsilonPlus, EpsilonGammaBox, EpsilonAlpha2Beta1,
        /// EpsilonPlusFlat or EpsilonAlpha2Beta1Flat (Zennit's names), or a JSON file with a
        /// rule per layer (README "LRP").
        #[arg(long, default_value = engine::DEFAULT_COMPOSITE)]
        composite: String,
        /// Write the relevance (6 volumes, float32, the study's affine) as NIfTI here.
        #[arg(long)]
        relevance: Option<PathBuf>,
        /// Write the predicted segmentation (uint8, 1 = tumour) as NIfTI here.
        #[arg(long)]
        segmentation: Option<PathBuf>,
        /// Also write the relevance (6 × voxels, float32 little-endian, file order) here.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Also write the JSON summary (with the per-sequence shares) to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Propagate through the whole volume instead of the explained voxels' receptive field
        /// (the same map, slower: for measuring what cropping saves).
        #[arg(long)]
        no_crop: bool,
    },
    /// The relevance analysis of Chlebus et al. 2019 over a cohort: for every study folder in
    /// DIR, segment, explain the chosen regions, and write OUT/cohort.csv (patient, region,
    /// voxels, left-out voxels, Dice, conservation, per-sequence shares), the
    /// parallel-coordinates plot OUT/parallel-<region>.svg/.png and a six-panel figure per
    /// patient and region in OUT/figures/. Finished patients are kept in OUT/patients/ and
    /// skipped when the run is repeated (interrupted runs resume); a broken study is reported
    /// and the others go on, and the exit status is non-zero at the end.
    ///
    /// DIR holds one folder per patient (README "Cohorts"), as `seglrp phantoms` writes them.
    /// With --parts N --part I, one of N disjoint shares of the patients (for a Slurm job array
    /// or a Kubernetes Indexed Job sharing OUT); `seglrp cohort merge OUT` then builds the
    /// table, and `seglrp cohort status OUT` shows how the parts are doing.
    ///
    /// Examples: seglrp phantoms --out cohort/ && seglrp cohort cohort/ --out results/
    ///           seglrp cohort cohort/ --out results-tp/ --regions tp,fn --composite Epsilon
    ///           seglrp cohort cohort/ --out shared/ --parts 4 --part "$SLURM_ARRAY_TASK_ID"
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Cohort {
        #[command(subcommand)]
        action: Option<CohortAction>,
        #[command(flatten)]
        run: CohortRun,
    },
}

#[derive(clap::Args)]
struct CohortRun {
    /// The cohort: one folder per patient.
    #[arg(required = true)]
    dir: Option<PathBuf>,
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// safetensors weights (README "Models"); default: the bundled liver model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Regions to explain, comma-separated: all (predicted tumour), tp, fn, fp (against each
    /// study's label).
    #[arg(long, default_value = "all", value_parser = parse_regions)]
    regions: Regions,
    /// Class to explain: 0 background, 1 tumour.
    #[arg(long, default_value_t = 1)]
    class: usize,
    #[arg(long, default_value = COHORT_COMPOSITE)]
    composite: String,
    /// Run on the GPU (burn-wgpu: Vulkan, Metal or DirectX 12).
    #[arg(long)]
    gpu: bool,
    /// Patients processed at once (default: by cores and free memory; 1 with --gpu).
    #[arg(long)]
    jobs: Option<usize>,
    /// Also write each region's relevance as NIfTI to OUT/relevance/.
    #[arg(long)]
    save_relevance: bool,
    /// Redo patients that are already finished.
    #[arg(long)]
    force: bool,
    /// Split the cohort into N disjoint shares by a hash of each patient's folder name (adding
    /// patients moves no one between shares); with --part, run one of them. Parts share OUT and
    /// never write the table: `seglrp cohort merge OUT` does, once they are done.
    #[arg(long, value_name = "N", requires = "part", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    parts: Option<u32>,
    /// Which share to run, 0 to N−1 (Slurm: $SLURM_ARRAY_TASK_ID with --array=0-(N−1);
    /// Kubernetes Indexed Job: $JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "I", requires = "parts")]
    part: Option<u32>,
}

#[derive(Subcommand)]
enum CohortAction {
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

/// How a study is read and which engine explains it.
#[derive(clap::Args)]
struct StudyOptions {
    /// safetensors weights (README "Models"); default: the bundled liver model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Override a file's guessed role, as FILE=ROLE; ROLE is one of "T2", "T1 plain",
    /// "T1 20 s", "T1 60 s", "T1 120 s", "T1 15 min", "all sequences", "label", "unused".
    #[arg(long, value_name = "FILE=ROLE")]
    role: Vec<String>,
    /// CPU backend ("cpu" = the default one).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Run on the GPU (burn-wgpu: Vulkan, Metal or DirectX 12) instead of the CPU.
    #[arg(long)]
    gpu: bool,
}

/// The cohort's default composite: the page's recommended one (ZBox on the input, γ in the
/// convolutions, ε above), as in Zennit's EpsilonGammaBox.
const COHORT_COMPOSITE: &str = "EpsilonGammaBox";

#[derive(Clone, Debug)]
struct Regions(Vec<seglrp::region::Selection>);

fn parse_regions(s: &str) -> Result<Regions, String> {
    let v: Vec<_> = s.split(',').map(seglrp::region::Selection::parse).collect::<Result<_, _>>()?;
    let mut names: Vec<&str> = v.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    if names.len() != v.len() {
        return Err(format!("\"{s}\" names a region twice"));
    }
    Ok(Regions(v))
}

fn device(gpu: bool, cpu: &str) -> Result<burn::prelude::Device, String> {
    if gpu {
        backend::gpu_device()
    } else {
        backend::cpu_device(cpu)
    }
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Write a randomly initialised network (weights from a seed) as safetensors.
    ///
    /// Example: seglrp model init --config unet.json --seed 7 --out random.safetensors
    Init {
        /// UNetConfig as JSON (README "Models"); default: the skeleton's architecture.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Biases are drawn from ±this.
        #[arg(long, default_value_t = 0.1)]
        bias_scale: f32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the bundled liver model as safetensors (its configuration is in the metadata).
    Bundled {
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_voxel(s: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}: expected x,y,z"))?;
    v.try_into().map_err(|_| "expected three numbers x,y,z".to_string())
}

fn parse_box(s: &str) -> Result<[usize; 6], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}: expected d0,h0,w0,d1,h1,w1"))?;
    v.try_into().map_err(|_| "expected six numbers d0,h0,w0,d1,h1,w1".to_string())
}

fn parse_shape(s: &str) -> Result<[usize; 4], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}: expected C,D,H,W"))?;
    v.try_into().map_err(|_| "expected four numbers C,D,H,W".to_string())
}

pub(crate) fn load_model(path: &Path, config: Option<&Path>, device: &burn::prelude::Device) -> Result<UNet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = match config {
        Some(c) => serde_json::from_slice(&std::fs::read(c).map_err(|e| format!("{}: {e}", c.display()))?)
            .map_err(|e| format!("{}: {e}", c.display()))?,
        None => weights::config_of(&bytes)
            .ok_or_else(|| format!("{}: no configuration in the file; give --config", path.display()))?,
    };
    weights::from_safetensors(&config, &bytes, device).map_err(|e| format!("{}: {e}", path.display()))
}

fn relevance_command(args: RelevanceArgs) -> Result<(), String> {
    use burn::prelude::*;
    let device = backend::cpu_device("cpu")?;
    let net = load_model(&args.model, args.config.as_deref(), &device)?;
    let raw = std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let x: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let [c, d, h, w] = args.shape;
    if x.len() != c * d * h * w {
        return Err(format!("{}: {} values, but the shape needs {}", args.input.display(), x.len(), c * d * h * w));
    }
    // [C, D, H, W] row-major is a Volume's layout with dims [W, H, D].
    let vol = seglrp::volume::Volume {
        dims: [w, h, d],
        channels: c,
        spacing: [1.0; 3],
        affine: seglrp::geometry::Affine::diagonal([1.0; 3]),
        data: x,
    };
    let host = |t: Tensor<5>| t.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"));
    // --repeat: the fastest of N runs, each read back to the host (scripts/bench_zennit.py).
    let mut forward_s = f64::INFINITY;
    let mut p = None;
    for _ in 0..args.repeat.max(1) {
        let t = std::time::Instant::now();
        let prepared = engine::prepare_normalised(&net, &vol, &device)?;
        host(prepared.whole().expect("prepare_normalised keeps the whole pass").logits.clone())?;
        forward_s = forward_s.min(t.elapsed().as_secs_f64());
        p = Some(prepared);
    }
    let p = p.expect("at least one run");
    let acts = p.whole().expect("prepare_normalised keeps the whole pass");
    let composite = engine::composite(&args.composite, &p)?;
    if let Some(path) = &args.logits {
        let dims = acts.logits.dims();
        let l = engine::crop(host(acts.logits.clone())?, net.config.classes, dims, vol.dims);
        write(path, &l.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    if args.class >= net.config.classes {
        return Err(format!("class {} does not exist", args.class));
    }
    let (r, summary) = match (args.voxel, args.region) {
        (Some(v), _) => {
            if v[0] >= d || v[1] >= h || v[2] >= w {
                return Err(format!("voxel {v:?} lies outside {d}×{h}×{w}"));
            }
            let target = match args.versus {
                Some(other) if other >= net.config.classes || other == args.class => {
                    return Err(format!("--versus {other}: another existing class is needed"))
                }
                Some(other) => lrp::Target::Difference { other },
                None => lrp::Target::Logit,
            };
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..args.repeat.max(1) {
                let t = std::time::Instant::now();
                let e = lrp::explain_target(&net, acts, &composite, args.class, v, target);
                let logit = e.logit.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?[0];
                let dims = e.relevance.dims();
                let r = host(e.relevance)?;
                best = best.min(t.elapsed().as_secs_f64());
                out = Some((engine::crop(r, c, dims, vol.dims), logit));
            }
            let (r, logit) = out.expect("at least one run");
            (r, serde_json::json!({ "logit": logit, "lrp_s": best }))
        }
        (None, Some([d0, h0, w0, d1, h1, w1])) => {
            if d0 >= d1 || h0 >= h1 || w0 >= w1 || d1 > d || h1 > h || w1 > w {
                return Err(format!("the region box must lie inside {d}×{h}×{w} and not be empty"));
            }
            let mut mask = vec![0u8; d * h * w];
            for z in d0..d1 {
                for y in h0..h1 {
                    mask[(z * h + y) * w + w0..(z * h + y) * w + w1].fill(1);
                }
            }
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..args.repeat.max(1) {
                let t = std::time::Instant::now();
                out = Some(pollster::block_on(engine::explain_region(&net, &p, &mask, args.class, &composite))?);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let e = out.expect("at least one run");
            let summary = serde_json::json!({
                "region_voxels": e.voxels,
                "kept": e.voxels - e.left_out,
                "left_out": e.left_out,
                "region_s": best,
            });
            (e.relevance, summary)
        }
        (None, None) => return Err("give --voxel or --region".into()),
    };
    write(&args.out, &r.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    let mut summary = summary;
    summary["relevance_sum"] = serde_json::json!(r.iter().map(|v| *v as f64).sum::<f64>());
    summary["composite"] = serde_json::json!(args.composite);
    summary["forward_s"] = serde_json::json!(forward_s);
    println!("{summary}");
    Ok(())
}

struct RelevanceArgs {
    model: PathBuf,
    config: Option<PathBuf>,
    input: PathBuf,
    shape: [usize; 4],
    voxel: Option<[usize; 3]>,
    region: Option<[usize; 6]>,
    class: usize,
    versus: Option<usize>,
    composite: String,
    out: PathBuf,
    logits: Option<PathBuf>,
    repeat: usize,
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    // Write then rename: an interrupted run never leaves a half-written file under the name.
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn gzip_wanted(path: &Path) -> bool {
    path.to_string_lossy().to_ascii_lowercase().ends_with(".gz")
}

/// Reads every file as a stream from disk: each is judged by its header before its voxels are
/// read, and a file that cannot be opened is that file's error only.
fn read_all(paths: &[PathBuf]) -> Vec<FileReport> {
    let inputs: Vec<study::Input> = paths.iter().map(|p| study::Input::path(p)).collect();
    study::read_files(&inputs)
}

fn info(files: &[PathBuf], json: bool, values: Option<PathBuf>) -> Result<(), String> {
    let reports = read_all(files);
    let mut failed = 0;
    let mut out = Vec::new();
    for r in &reports {
        let Some(vol) = &r.volume else {
            failed += 1;
            let error = r.error.clone().unwrap_or_default();
            // The reason goes to stderr in words whatever the output format.
            eprintln!("error: {}: {error}", r.name);
            out.push(serde_json::json!({ "file": r.name, "error": error }));
            continue;
        };
        let info = r.info.as_ref().expect("a read file has its info");
        // Text output lists them under the file; beside JSON, a person reads stderr.
        if json {
            for note in &info.notes {
                eprintln!("warning: {}: {note}", r.name);
            }
        }
        let (min, max) = vol.data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let sum: f64 = vol.data.iter().map(|v| *v as f64).sum();
        if let Some(dir) = &values {
            let name = Path::new(&r.name).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let bytes: Vec<u8> = vol.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            write(&dir.join(format!("{name}.f32")), &bytes)?;
        }
        if json {
            out.push(serde_json::json!({ "file": r.name, "info": info, "min": min, "max": max, "sum": sum }));
        } else {
            let dims = info.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × ");
            println!("{}", r.name);
            println!(
                "  {} {}, {}, {}",
                info.format,
                if info.pair { "pair" } else { "file" },
                serde_json::to_string(&info.datatype).unwrap_or_default().trim_matches('"'),
                if info.little_endian { "little-endian" } else { "big-endian" }
            );
            println!("  dimensions {dims}, voxel size {:?} mm", info.spacing);
            println!("  orientation {} (affine from {:?})", info.orientation, info.affine_source);
            for row in info.affine.rows4() {
                println!("    [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]", row[0], row[1], row[2], row[3]);
            }
            if let Some((slope, inter)) = info.scaling {
                println!("  scaled: value × {slope} + {inter}");
            }
            if info.non_finite > 0 {
                println!("  warning: {} NaN or infinite voxels were set to 0", info.non_finite);
            }
            for note in &info.notes {
                println!("  warning: {note}");
            }
            println!("  values: min {min}, max {max}, sum {sum}");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out).expect("plain JSON"));
    }
    if failed > 0 {
        return Err(format!("{failed} of {} file(s) could not be read (reasons above)", reports.len()));
    }
    Ok(())
}

pub(crate) fn open_study(files: &[PathBuf], roles: &[String]) -> Result<Study, String> {
    let mut reports = read_all(files);
    for r in &reports {
        for note in r.info.iter().flat_map(|i| &i.notes) {
            eprintln!("warning: {}: {note}", r.name);
        }
    }
    let errors: Vec<String> =
        reports.iter().filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name))).collect();
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
            seglrp::volume::SEQUENCES[c]
        );
    }
    Ok(study)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sample { patient, dims, out, dir } => {
            let dims = dims.unwrap_or(phantom::COHORT_DIMS);
            if dims.iter().any(|d| !(8..=1024).contains(d)) {
                return Err(format!("--dims {dims:?}: each side must be 8 to 1024 voxels"));
            }
            let p = phantom::study(phantom::cohort_seed(usize::from(patient)), dims);
            if let Some(out) = out {
                write(&out, &nifti::write_nifti(&p.volume, gzip_wanted(&out)))?;
                eprintln!("wrote {}", out.display());
            }
            if let Some(dir) = dir {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                for (name, bytes) in p.nifti_files(true) {
                    write(&dir.join(name), &bytes)?;
                }
                eprintln!("wrote the six sequences and label.nii.gz to {}", dir.display());
            }
        }
        Command::Phantoms { out, patients, no_gzip } => phantoms::write_cohort(&out, &patients.0, !no_gzip)?,
        Command::Train { out, steps, seed, config, checkpoint_every } => training::train(
            training::TrainArgs { out, steps, seed, config, checkpoint_every },
            &backend::cpu_device("cpu")?,
        )?,
        Command::Evaluate { model, patients, no_ablation, json } => {
            let device = backend::cpu_device("cpu")?;
            training::evaluate(&training::load(model.as_deref(), &device)?, &patients.0, !no_ablation, json, &device)?
        }
        Command::Info { files, json, values } => info(&files, json, values)?,
        Command::Model(ModelCommand::Init { config, seed, bias_scale, out }) => {
            let config: UNetConfig = match config {
                Some(c) => serde_json::from_slice(&std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?)
                    .map_err(|e| format!("{}: {e}", c.display()))?,
                None => UNetConfig::skeleton(),
            };
            config.validate()?;
            let device = backend::cpu_device("cpu")?;
            write(&out, &weights::to_safetensors(&UNet::seeded(&config, seed, bias_scale, &device)))?;
            eprintln!("wrote {}", out.display());
        }
        Command::Model(ModelCommand::Bundled { out }) => {
            write(&out, weights::BUNDLED)?;
            eprintln!("wrote {}", out.display());
        }
        Command::Relevance {
            model,
            config,
            input,
            shape,
            voxel,
            region,
            class,
            versus,
            composite,
            out,
            logits,
            repeat,
        } => relevance_command(RelevanceArgs {
            model,
            config,
            input,
            shape,
            voxel,
            region,
            class,
            versus,
            composite,
            out,
            logits,
            repeat,
        })?,
        Command::Segment { files, common, out, windows } => {
            let study = open_study(&files, &common.role)?;
            let device = device(common.gpu, &common.backend)?;
            let net = training::load(common.model.as_deref(), &device)?;
            explain::segment_command(&net, study, explain::SegmentArgs { out, windows }, &device)?
        }
        Command::Explain {
            files,
            common,
            voxel,
            class,
            region,
            bbox,
            mask,
            composite,
            relevance,
            segmentation,
            raw,
            json,
            no_crop,
        } => {
            let study = open_study(&files, &common.role)?;
            let device = device(common.gpu, &common.backend)?;
            let net = training::load(common.model.as_deref(), &device)?;
            let args = explain::ExplainArgs {
                voxel,
                class,
                region,
                bbox,
                mask,
                composite,
                relevance,
                segmentation,
                raw,
                json,
                crop: !no_crop,
            };
            explain::explain_command(&net, study, args, &device)?
        }
        Command::Cohort { action: Some(CohortAction::Merge { out }), .. } => parts::merge(&out)?,
        Command::Cohort { action: Some(CohortAction::Status { out, json }), .. } => parts::status(&out, json)?,
        Command::Cohort { action: None, run: r } => {
            let share = match (r.parts, r.part) {
                (Some(n), Some(i)) if i >= n => {
                    return Err(format!("--part {i}: parts are numbered 0 to {} (--parts {n})", n - 1))
                }
                (Some(n), Some(i)) => Some(parts::Share { part: i, parts: n }),
                _ => None,
            };
            let gpu = r.gpu;
            let args = cohort::CohortArgs {
                dir: r.dir.expect("clap requires DIR"),
                out: r.out.expect("clap requires --out"),
                model: r.model,
                regions: r.regions.0,
                class: r.class,
                composite: r.composite,
                jobs: r.jobs,
                save_relevance: r.save_relevance,
                force: r.force,
                share,
            };
            cohort::cohort(args, &device(gpu, "cpu")?, gpu)?
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
