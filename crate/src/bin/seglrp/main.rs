//! `seglrp`: the engine on the command line (CPU; GPU with `--gpu` in builds with the `gpu`
//! feature). One file per subcommand, each with its clap `Args` and its `run`; what they share
//! (reading studies, the model and the device, writing files) is in common.rs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cohort;
mod common;
mod evaluate;
mod explain;
mod faithfulness;
mod figure;
mod info;
mod model;
mod parts;
mod phantoms;
mod progress;
mod relevance;
mod resample;
mod sample;
mod segment;
mod train;

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
    Sample(sample::Args),
    /// Write patients of the demo cohort (liver phantoms, generated from fixed seeds) as NIfTI:
    /// OUT/patientNN/{t2,t1_plain,t1_20s,t1_60s,t1_120s,t1_15min,label}.nii.gz and lesions.json.
    ///
    /// Example: seglrp phantoms --patients 1-20 --out cohort/
    Phantoms(phantoms::Args),
    /// Train the liver U-Net on phantoms generated on the fly (native CPU, all cores); writes
    /// safetensors (with the configuration in its metadata) and checkpoints along the way.
    /// The defaults reproduce the bundled model.
    ///
    /// Example: seglrp train --out liver-unet.safetensors
    Train(train::Args),
    /// Dice of the tumour segmentation on the held-out phantom cohort, with every sequence and
    /// with each single sequence zeroed out (which sequences the model needs).
    ///
    /// Example: seglrp evaluate --patients 1-20
    Evaluate(evaluate::Args),
    /// Describe NIfTI files: dimensions, datatype, voxel-to-world affine, orientation, scaling
    /// and value statistics. Exits non-zero when any file cannot be read.
    ///
    /// Example: seglrp info t2.nii.gz scan.hdr scan.img --json
    Info(info::Args),
    /// Create or export model weights (safetensors with PyTorch parameter names).
    #[command(subcommand)]
    Model(model::Command),
    /// LRP on a raw input tensor, without normalisation: for checks against other
    /// implementations (tests/lrp_parity.py). Writes the relevance as float32 [C, D, H, W].
    ///
    /// Example: seglrp relevance --model w.safetensors --input x.f32 --shape 6,24,40,33 \
    ///          --voxel 10,20,16 --composite EpsilonGammaBox --out r.f32
    Relevance(relevance::Args),
    /// Move a NIfTI file onto another file's voxel grid in world coordinates (their affines:
    /// any orientation, obliquity and voxel size): trilinear, or --nearest for labels. Points
    /// outside the file's extent are 0.
    ///
    /// Example: seglrp resample relevance.nii.gz --like dwi.nii.gz --out relevance-on-dwi.nii.gz
    Resample(resample::Args),
    /// Segment a study: writes the predicted tumour as a NIfTI label (uint8, the study's affine)
    /// and prints a JSON summary (tumour voxels, components, Dice when a label file is given).
    ///
    /// Example: seglrp segment patient07/*.nii.gz --out patient07-seg.nii.gz
    Segment(segment::Args),
    /// Segment a study and explain a voxel or a region with LRP; prints a JSON summary with the
    /// per-sequence shares of relevance.
    ///
    /// The study is one 4-D file with the six sequences as volumes, or six 3-D files named
    /// after their sequences (see the README), optionally with a label file.
    ///
    /// Examples: seglrp explain sample.nii.gz --voxel 20,30,8 --relevance relevance.nii.gz
    ///           seglrp explain patient07/*.nii.gz --region tp --composite EpsilonGammaBox --json tp.json
    ///           seglrp explain patient07/*.nii.gz --mask my-region.nii.gz
    Explain(explain::Args),
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
    Cohort(cohort::Args),
    /// How faithful each map of a region is: region perturbation in 3D (the region's summed
    /// logit and Dice as the most relevant values are replaced first, MoRF, and the least
    /// relevant first, LeRF; AOPC per curve) for LRP composites beside gradient, gradient ×
    /// input, integrated gradients, SmoothGrad, occlusion and a random map; and each channel's
    /// share of relevance beside the score lost when that channel is replaced (README "How
    /// faithful is a map?"). Prints a table; the JSON has the curves.
    ///
    /// Examples: seglrp faithfulness patient07/*.nii.gz --region all
    ///           seglrp faithfulness study/ --model nnunet/ --class 2 --methods EpsilonGammaBox,occlusion,random \
    ///             --steps 20 --patch 3 --json faithfulness.json
    Faithfulness(faithfulness::Args),
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sample(args) => sample::run(args),
        Command::Phantoms(args) => phantoms::run(args),
        Command::Train(args) => train::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Info(args) => info::run(args),
        Command::Model(command) => model::run(command),
        Command::Relevance(args) => relevance::run(args),
        Command::Resample(args) => resample::run(args),
        Command::Segment(args) => segment::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Cohort(args) => cohort::run(args),
        Command::Faithfulness(args) => faithfulness::run(args),
    }
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
