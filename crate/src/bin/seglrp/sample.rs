//! `seglrp sample`: one demo-cohort patient as NIfTI.

use std::path::PathBuf;

use seglrp::demo::phantom;
use seglrp::io::nifti;

use crate::common::{gzip_wanted, numbers, write};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub patient: u16,
    /// Image the same patient on another grid, X,Y,Z voxels (same voxel size, centred on
    /// the liver; default 128,96,40): smaller studies for quick checks, larger ones for
    /// benchmarks.
    #[arg(long, value_parser = numbers::<3>)]
    pub dims: Option<[usize; 3]>,
    #[arg(long, required_unless_present = "dir")]
    pub out: Option<PathBuf>,
    #[arg(long, conflicts_with = "out")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let Args { patient, dims, out, dir } = args;
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
    Ok(())
}
