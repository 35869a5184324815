//! `seglrp evaluate`: Dice on the held-out phantom cohort, with each sequence zeroed in turn.

use std::path::PathBuf;
use std::time::Instant;

use seglrp::backend;
use seglrp::demo::phantom;
use seglrp::io::volume::SEQUENCES;
use seglrp::spatial::metrics::Overlap;
use seglrp::spatial::sliding::{self, Patches};

use crate::common::load;
use crate::phantoms::{parse_patients, Patients};
use crate::progress::bar;

#[derive(clap::Args)]
pub struct Args {
    /// safetensors weights; default: the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "1-20", value_parser = parse_patients)]
    pub patients: Patients,
    /// Skip the single-sequence ablation.
    #[arg(long)]
    pub no_ablation: bool,
    #[arg(long)]
    pub json: bool,
}

/// Dice of one condition (all sequences, or one zeroed) over the patients.
struct Condition {
    name: String,
    per_patient: Vec<Option<f32>>,
    total: Overlap,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = &backend::cpu_device("cpu")?;
    let net = &load(args.model.as_deref(), device)?;
    let (patients, ablation, json) = (&args.patients.0[..], !args.no_ablation, args.json);
    let conditions: Vec<Option<usize>> = std::iter::once(None).chain((0..6).filter(|_| ablation).map(Some)).collect();
    let pb = bar((patients.len() * conditions.len()) as u64, "evaluating");
    let started = Instant::now();
    let mut results: Vec<Condition> = conditions
        .iter()
        .map(|c| Condition {
            name: c.map_or("all sequences".to_string(), |c| format!("{} zeroed", SEQUENCES[c])),
            per_patient: Vec::new(),
            total: Overlap::default(),
        })
        .collect();
    let mut rows = Vec::new();
    for &i in patients {
        pb.set_message(format!("patient {i:02}"));
        let p = phantom::cohort_patient(i);
        for (k, zeroed) in conditions.iter().enumerate() {
            let mut vol = p.volume.clone();
            if let Some(c) = zeroed {
                let n = vol.voxels();
                vol.data[c * n..(c + 1) * n].fill(0.0);
            }
            let mask = pollster::block_on(sliding::segment(net, &vol, Patches::default(), device, |_, _| {}))?;
            let o = Overlap::of(&mask, &p.label);
            results[k].per_patient.push(o.dice());
            results[k].total = results[k].total.add(o);
            if zeroed.is_none() {
                rows.push((i, o, p.lesions.iter().filter(|l| l.kind.is_tumour()).count(), p.lesions.len()));
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let mean = |v: &[Option<f32>]| {
        let d: Vec<f32> = v.iter().flatten().copied().collect();
        if d.is_empty() {
            f32::NAN
        } else {
            d.iter().sum::<f32>() / d.len() as f32
        }
    };
    if json {
        let out = serde_json::json!({
            "patients": rows.iter().map(|(i, o, t, l)| serde_json::json!({
                "patient": i,
                "tumours": t,
                "lesions": l,
                "tumour_voxels": o.labelled,
                "predicted_voxels": o.predicted,
                "dice": o.dice(),
            })).collect::<Vec<_>>(),
            "conditions": results.iter().map(|r| serde_json::json!({
                "condition": r.name,
                "dice": r.total.dice(),
                "mean_patient_dice": mean(&r.per_patient),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("plain JSON"));
        return Ok(());
    }
    println!(
        "Tumour segmentation on {} held-out phantoms (cohort patients, never trained on), sliding windows {:?}:",
        patients.len(),
        Patches::default().size
    );
    println!(
        "{:>8} {:>7} {:>8} {:>13} {:>10} {:>6}",
        "patient", "tumours", "lesions", "tumour voxels", "predicted", "Dice"
    );
    for (i, o, t, l) in &rows {
        let d = o.dice().map_or("—".to_string(), |d| format!("{d:.3}"));
        println!("{i:>8} {t:>7} {l:>8} {:>13} {:>10} {d:>6}", o.labelled, o.predicted);
    }
    println!();
    println!("{:<22} {:>11} {:>18}", "input", "Dice (all)", "mean patient Dice");
    let base = results[0].total.dice().unwrap_or(f32::NAN);
    for r in &results {
        let d = r.total.dice().unwrap_or(f32::NAN);
        let drop = if r.name == results[0].name { String::new() } else { format!("  ({:+.3})", d - base) };
        println!("{:<22} {:>11.3} {:>18.3}{drop}", r.name, d, mean(&r.per_patient));
    }
    let drops = results.iter().skip(1).filter(|r| r.total.dice().unwrap_or(0.0) < base - 0.01).count();
    if ablation {
        println!("\nDice drops (by > 0.01) when any one of {drops} of the 6 sequences is zeroed.");
    }
    eprintln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
