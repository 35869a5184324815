//! `seglrp model`: create or export weights (safetensors with PyTorch parameter names).

use std::path::PathBuf;

use clap::Subcommand;
use seglrp::unet::{UNet, UNetConfig};
use seglrp::{backend, weights};

use crate::common::write;

#[derive(Subcommand)]
pub enum Command {
    /// Write a randomly initialised network (weights from a seed) as safetensors.
    ///
    /// Example: seglrp model init --config unet.json --seed 7 --out random.safetensors
    Init {
        /// UNetConfig as JSON (README "Models"); default: the small test network (2 levels, 8 channels).
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
    }
    Ok(())
}
