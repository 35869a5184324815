//! `seglrp resample`: a NIfTI file moved onto another file's voxel grid in world coordinates
//! (trilinear, or nearest for labels), e.g. a relevance map exported on the study's grid brought
//! back onto one of the input sequences' grids.

use std::path::PathBuf;

use seglrp::io::resample::{resample, Grid, Interpolation};

use crate::common::{gzip_wanted, read_all, write};

#[derive(clap::Args)]
pub struct Args {
    /// The file to resample (3-D, or 4-D: every volume).
    pub file: PathBuf,
    /// The file whose grid (dimensions and voxel-to-world affine) the result takes.
    #[arg(long, value_name = "FILE")]
    pub like: PathBuf,
    /// Where to write the result (.nii or .nii.gz).
    #[arg(long)]
    pub out: PathBuf,
    /// Nearest voxel instead of trilinear interpolation: for labels and segmentations.
    #[arg(long)]
    pub nearest: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let reports = read_all(&[args.file.clone(), args.like.clone()]);
    let volume = |i: usize| {
        reports[i]
            .volume
            .as_ref()
            .ok_or_else(|| format!("{}: {}", reports[i].name, reports[i].error.clone().unwrap_or_default()))
    };
    let (source, like) = (volume(0)?, volume(1)?);
    let how = if args.nearest { Interpolation::Nearest } else { Interpolation::Linear };
    let out = resample(source, &Grid::of(like), how).map_err(|e| format!("{}: {e}", reports[0].name))?;
    write(&args.out, &seglrp::io::nifti::write_nifti(&out, gzip_wanted(&args.out)))?;
    println!(
        "{} ({:?}, {}) resampled onto the grid of {} ({:?}, {}): {}",
        reports[0].name,
        source.dims,
        source.affine.orientation(),
        reports[1].name,
        like.dims,
        like.affine.orientation(),
        args.out.display()
    );
    Ok(())
}
