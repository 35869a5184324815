//! `seglrp model`: create or export weights (safetensors with PyTorch parameter names).

use std::path::PathBuf;

use clap::Subcommand;
use seglrp::backend;
use seglrp::model::unet::{UNet, UNetConfig};
use seglrp::model::weights;

use crate::common::write;

#[derive(Subcommand)]
pub enum Command {
    /// Write a randomly initialised network (weights from a seed) as safetensors.
    ///
    /// Example: seglrp model init --config unet.json --seed 7 --out random.safetensors
    Init {
        /// UNetConfig as JSON (docs/models.md); default: the small test network (2 levels, 8 channels).
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
    /// Print a model's card: architecture, parameters, input channels, classes and the
    /// preprocessing it expects, with where each came from.
    ///
    /// Example: seglrp model info nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres
    Info {
        /// An nnU-Net trained-model folder, or SegLRP U-Net safetensors.
        path: PathBuf,
        /// nnU-Net: only these folds (comma-separated; default: every fold_N with a checkpoint).
        #[arg(long, value_delimiter = ',')]
        folds: Option<Vec<String>>,
        /// The card as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Init { config, seed, bias_scale, out } => {
            let config: UNetConfig = match config {
                Some(c) => serde_json::from_slice(&std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?)
                    .map_err(|e| format!("{}: {e}", c.display()))?,
                None => UNetConfig::small(),
            };
            config.validate()?;
            let device = backend::cpu_device("cpu")?;
            write(&out, &weights::to_safetensors(&UNet::seeded(&config, seed, bias_scale, &device)))?;
            eprintln!("wrote {}", out.display());
        }
        Command::Bundled { out } => {
            write(&out, weights::BUNDLED)?;
            eprintln!("wrote {}", out.display());
        }
        Command::Info { path, folds, json } => {
            let device = backend::cpu_device("cpu")?;
            let loaded = seglrp::model::open::open(&path, folds.as_deref(), &device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&loaded.card).map_err(|e| e.to_string())?);
            } else {
                print!("{}", loaded.card.text());
            }
        }
    }
    Ok(())
}
