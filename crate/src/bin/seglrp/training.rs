//! `seglrp train` and `seglrp evaluate`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Device;
use seglrp::metrics::Overlap;
use seglrp::phantom;
use seglrp::train::{self, TrainOptions};
use seglrp::unet::{UNet, UNetConfig};
use seglrp::volume::SEQUENCES;
use seglrp::weights;
use seglrp::window::{self, Windows};

use crate::progress::bar;

pub struct TrainArgs {
    pub out: PathBuf,
    pub steps: Option<usize>,
    pub seed: Option<u64>,
    pub config: Option<PathBuf>,
    pub checkpoint_every: usize,
}

pub fn train(args: TrainArgs, device: &Device) -> Result<(), String> {
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
            if let Err(e) = crate::write(&args.out, &weights::to_safetensors(&snapshot())) {
                failure = Some(e);
            }
        }
    });
    pb.finish_with_message(format!("loss {smoothed:.4}"));
    if let Some(e) = failure {
        return Err(e);
    }
    crate::write(&args.out, &weights::to_safetensors(&net))?;
    eprintln!(
        "trained {} steps in {:.1} min; wrote {}",
        opts.steps,
        started.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}

/// Dice of one condition (all sequences, or one zeroed) over the patients.
struct Condition {
    name: String,
    per_patient: Vec<Option<f32>>,
    total: Overlap,
}

pub fn evaluate(net: &UNet, patients: &[usize], ablation: bool, json: bool, device: &Device) -> Result<(), String> {
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
            let mask = pollster::block_on(window::segment(net, &vol, Windows::default(), device, |_, _| {}))?;
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
        Windows::default().size
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

pub fn load(path: Option<&Path>, device: &Device) -> Result<UNet, String> {
    match path {
        Some(p) => crate::load_model(p, None, device),
        None => seglrp::weights::bundled(device).map_err(|e| e.to_string()),
    }
}
