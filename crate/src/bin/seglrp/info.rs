//! `seglrp info`: what each NIfTI file or DICOM series holds, each on its own.

use std::path::{Path, PathBuf};

use crate::common::{read_all, write};

#[derive(clap::Args)]
pub struct Args {
    /// .nii, .nii.gz, .hdr with its .img, DICOM files or folders of them (one entry per series),
    /// or a .zip of any of these.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON (one object per file) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write each file's scaled values (float32 little-endian, file order) to
    /// DIR/<file name>.f32.
    #[arg(long, value_name = "DIR")]
    pub values: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let Args { files, json, values } = args;
    let reports = read_all(&files);
    let mut failed = 0;
    let mut out = Vec::new();
    for r in &reports {
        let Some(vol) = &r.volume else {
            if r.aside {
                // Beside the series of a DICOM folder: what it is, not a failure.
                eprintln!("note: {}: {}", r.name, r.error.clone().unwrap_or_default());
                continue;
            }
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
                if info.pair {
                    "pair"
                } else if info.format == "DICOM" {
                    "series"
                } else {
                    "file"
                },
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
