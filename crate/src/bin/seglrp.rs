//! `seglrp`: the engine on the command line (CPU).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use seglrp::{backend, engine, nifti, phantom};

#[derive(Parser)]
#[command(name = "seglrp", version, about = "Layer-wise relevance propagation for 3D segmentation networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the bundled sample patient (6-sequence 4-D NIfTI).
    ///
    /// Example: seglrp sample --out sample.nii.gz
    Sample {
        #[arg(long)]
        out: PathBuf,
    },
    /// Segment a study and explain one voxel with LRP-ε; prints a JSON summary.
    ///
    /// Example: seglrp explain sample.nii.gz --voxel 20,30,8 --raw relevance.f32
    Explain {
        /// A 4-D NIfTI file with the 6 sequences as volumes.
        file: PathBuf,
        /// Voxel to explain, as x,y,z (NIfTI voxel indices).
        #[arg(long, value_parser = parse_voxel)]
        voxel: [usize; 3],
        /// Class to explain: 0 background, 1 tumour.
        #[arg(long, default_value_t = 1)]
        class: usize,
        /// CPU backend.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Also write the relevance (6 × voxels, float32 little-endian, file order) here.
        #[arg(long)]
        raw: Option<PathBuf>,
    },
}

fn parse_voxel(s: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = s.split(',').map(|p| p.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|e| format!("{e}: expected x,y,z"))?;
    v.try_into().map_err(|_| "expected three numbers x,y,z".to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sample { out } => {
            std::fs::write(&out, phantom::sample_nifti()).map_err(|e| format!("{}: {e}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
        Command::Explain { file, voxel, class, backend: name, raw } => {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let vol = nifti::read_nifti(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            let device = backend::cpu_device(&name)?;
            let net = engine::skeleton_model(&device);
            let t = std::time::Instant::now();
            let prepared = engine::prepare(&net, &vol, &device)?;
            let mask = pollster::block_on(engine::segmentation(&prepared))?;
            let t_segment = t.elapsed();
            let t = std::time::Instant::now();
            let e = pollster::block_on(engine::explain(&net, &prepared, voxel, class))?;
            eprintln!(
                "{name}: segmentation {:.0} ms, LRP pass {:.0} ms",
                t_segment.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
            if let Some(path) = raw {
                let bytes: Vec<u8> = e.relevance.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(&path, bytes).map_err(|err| format!("{}: {err}", path.display()))?;
            }
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "dims": vol.dims,
                "tumour_voxels": mask.iter().filter(|m| **m == 1).count(),
                "predicted_class_at_voxel": mask[vol.index(voxel)],
                "explanation": e,
            });
            println!("{}", serde_json::to_string_pretty(&summary).expect("plain JSON"));
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
