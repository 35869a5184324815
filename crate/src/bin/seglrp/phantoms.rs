//! `seglrp phantoms`: write phantom studies as NIfTI files.

use std::path::{Path, PathBuf};

use seglrp::demo::phantom;

use crate::progress::bar;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub out: PathBuf,
    /// 1-based patient numbers: "1-20", "3", "1,4,7".
    #[arg(long, default_value = "1-20", value_parser = parse_patients)]
    pub patients: Patients,
    /// Write .nii instead of .nii.gz.
    #[arg(long)]
    pub no_gzip: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    write_cohort(&args.out, &args.patients.0, !args.no_gzip)
}

/// 1-based cohort patient numbers.
#[derive(Clone, Debug)]
pub struct Patients(pub Vec<usize>);

/// Parses "1-20", "3", "1,4,7" (1-based patient numbers).
pub fn parse_patients(s: &str) -> Result<Patients, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let range = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| format!("bad patient number in \"{s}\""))?,
                    b.trim().parse().map_err(|_| format!("bad patient number in \"{s}\""))?,
                );
                a..=b
            }
            None => {
                let a: usize = part.trim().parse().map_err(|_| format!("bad patient number in \"{s}\""))?;
                a..=a
            }
        };
        for i in range {
            if !(1..=phantom::COHORT_SIZE).contains(&i) {
                return Err(format!("patient {i}: the cohort has patients 1–{}", phantom::COHORT_SIZE));
            }
            out.push(i);
        }
    }
    Ok(Patients(out))
}

/// Writes cohort patients to `out/patientNN/` (six sequences, label, lesions.json).
pub fn write_cohort(out: &Path, patients: &[usize], gzip: bool) -> Result<(), String> {
    let pb = bar(patients.len() as u64, "writing phantoms");
    for &i in patients {
        pb.set_message(format!("patient {i:02}"));
        let dir = out.join(format!("patient{i:02}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let p = phantom::cohort_patient(i);
        for (name, bytes) in p.nifti_files(gzip) {
            crate::common::write(&dir.join(name), &bytes)?;
        }
        let lesions: Vec<serde_json::Value> = p
            .lesions
            .iter()
            .map(|l| {
                serde_json::json!({
                    "kind": format!("{:?}", l.kind),
                    "tumour": l.kind.is_tumour(),
                    "diameter_mm": l.diameter(),
                    "centre_mm": l.centre,
                })
            })
            .collect();
        let info = serde_json::json!({
            "patient": i,
            "dims": p.volume.dims,
            "spacing_mm": p.volume.spacing,
            "tumour_voxels": p.label.iter().filter(|v| **v == 1).count(),
            "lesions": lesions,
        });
        crate::common::write(
            &dir.join("lesions.json"),
            serde_json::to_string_pretty(&info).expect("plain JSON").as_bytes(),
        )?;
        pb.inc(1);
    }
    pb.finish_with_message(format!("wrote {} patients to {}", patients.len(), out.display()));
    Ok(())
}
