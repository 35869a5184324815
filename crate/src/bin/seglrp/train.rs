//! `seglrp train`: the liver U-Net trained on phantoms generated on the fly.

use std::path::PathBuf;
use std::time::Instant;

use seglrp::backend;
use seglrp::demo::train::{self, TrainOptions};
use seglrp::model::unet::UNetConfig;
use seglrp::model::weights;

use crate::progress::bar;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub out: PathBuf,
    /// Optimiser steps (default: the bundled model's).
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// UNetConfig as JSON (docs/models.md); default: the bundled model's architecture.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the weights so far every N steps (0: never).
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: usize,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = &backend::cpu_device("cpu")?;
    let config: UNetConfig = match &args.config {
        Some(c) => serde_json::from_slice(&std::fs::read(c).map_err(|e| format!("{}: {e}", c.display()))?)
            .map_err(|e| format!("{}: {e}", c.display()))?,
        None => train::bundled_config(),
    };
    config.validate()?;
    if config.in_channels != 6 || config.classes != 2 {
        return Err("the phantoms have 6 sequences and 2 classes: set in_channels 6 and classes 2".into());
    }
    let mut opts = TrainOptions::bundled();
    opts.steps = args.steps.unwrap_or(opts.steps);
    opts.seed = args.seed.unwrap_or(opts.seed);
    if opts.dims.iter().any(|d| d % config.align() != 0) {
        return Err(format!(
            "training patches {:?} must be multiples of {} for {} levels",
            opts.dims,
            config.align(),
            config.levels
        ));
    }
    eprintln!("training {config:?}\nwith {opts:?}");
    let pb = bar(opts.steps as u64, "training");
    let started = Instant::now();
    let mut smoothed = f32::NAN;
    let mut failure = None;
    let net = train::train(&config, &opts, device, |step, loss, snapshot| {
        smoothed = if smoothed.is_nan() { loss } else { 0.98 * smoothed + 0.02 * loss };
        pb.set_message(format!("loss {smoothed:.4}"));
        pb.inc(1);
        if !pb.is_hidden() {
            return;
        }
        if (step + 1) % 100 == 0 {
            eprintln!(
                "step {}/{}: loss {smoothed:.4} ({:.0} s)",
                step + 1,
                opts.steps,
                started.elapsed().as_secs_f64()
            );
        }
        if args.checkpoint_every > 0 && (step + 1) % args.checkpoint_every == 0 && step + 1 < opts.steps {
            if let Err(e) = crate::common::write(&args.out, &weights::to_safetensors(&snapshot())) {
                failure = Some(e);
            }
        }
    });
    pb.finish_with_message(format!("loss {smoothed:.4}"));
    if let Some(e) = failure {
        return Err(e);
    }
    crate::common::write(&args.out, &weights::to_safetensors(&net))?;
    eprintln!(
        "trained {} steps in {:.1} min; wrote {}",
        opts.steps,
        started.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}
