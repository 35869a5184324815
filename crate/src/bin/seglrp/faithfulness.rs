//! `seglrp faithfulness`: how faithful each map of a region is, measured by region perturbation
//! (MoRF/LeRF curves and AOPC), for LRP composites beside other attribution methods, with each
//! channel's relevance share next to the score lost without that channel.

use std::path::PathBuf;
use std::time::Instant;

use seglrp::faithfulness::{self as faith, Baseline, EvaluationOptions, Method, MethodOptions, PerturbationOptions};
use seglrp::spatial::region::Selection;

use crate::common::{class_choice, numbers, write, ClassChoice, StudyOptions};
use crate::segment::segment;

/// The methods compared unless told otherwise: every LRP composite of the menu, the gradient
/// family, occlusion and the random floor.
pub const DEFAULT_METHODS: &str = "EpsilonGammaBox,Epsilon,EpsilonPlus,EpsilonAlpha2Beta1,EpsilonPlusFlat,\
                                   EpsilonAlpha2Beta1Flat,gradient,gradient_x_input,integrated_gradients,smoothgrad,\
                                   occlusion,random";

/// The other methods' parameters and the baseline (shared with `seglrp relevance --method`).
#[derive(clap::Args, Clone)]
pub struct MethodArgs {
    /// What a removed voxel becomes (and where integrated gradients start): background (each
    /// channel's value outside the body: the median of the study's outermost voxels), blur
    /// (Gaussian, σ = 2 voxels), noise (the channel's mean and spread) or zero.
    #[arg(long, default_value = "background", value_parser = faith::baseline::NAMES)]
    pub baseline: String,
    /// Integrated gradients: steps along the path from the baseline.
    #[arg(long, default_value_t = 20)]
    pub ig_steps: usize,
    /// SmoothGrad: samples (the last one without noise, as in Zennit).
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// SmoothGrad: the noise's σ as a fraction of the input's range.
    #[arg(long, default_value_t = 0.1)]
    pub noise_level: f32,
    /// Occlusion: the patch's edge in voxels (all channels at once).
    #[arg(long, default_value_t = 8)]
    pub occlusion_patch: usize,
    /// Occlusion: voxels between patches (default: the patch, no overlap).
    #[arg(long)]
    pub occlusion_stride: Option<usize>,
    /// Seeds SmoothGrad's noise, the random map, the noise baseline and the tie-breaking.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
}

impl MethodArgs {
    pub fn options(&self) -> MethodOptions {
        MethodOptions {
            ig_steps: self.ig_steps,
            samples: self.samples,
            noise_level: self.noise_level,
            occlusion_patch: self.occlusion_patch,
            occlusion_stride: self.occlusion_stride.unwrap_or(self.occlusion_patch),
            seed: self.seed,
        }
    }

    pub fn baseline(&self) -> Result<Baseline, String> {
        Baseline::parse(&self.baseline)
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: StudyOptions,
    /// With --region component: a voxel of the component, as x,y,z (NIfTI voxel indices).
    #[arg(long, value_parser = numbers::<3>)]
    pub voxel: Option<[usize; 3]>,
    /// Class explained (the model's class index), or "foreground" (each voxel its own).
    #[arg(long, default_value = "1", value_parser = class_choice)]
    pub class: ClassChoice,
    /// The region: "all" (every voxel predicted as the class), "component" (the connected
    /// component holding --voxel), or against the label file "tp", "fn", "fp".
    #[arg(long, default_value = "all", value_parser = ["component", "all", "tp", "fn", "fp"])]
    pub region: String,
    /// Methods, comma-separated: LRP composites by Zennit's names and gradient,
    /// gradient_x_input, integrated_gradients, smoothgrad, occlusion, random.
    #[arg(long, default_value = DEFAULT_METHODS, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Steps of each perturbation curve.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Perturb cubic patches of this edge (voxels) instead of single voxels.
    #[arg(long, default_value_t = 1)]
    pub patch: usize,
    /// A unit spans every channel of its voxel or patch (default: one channel).
    #[arg(long)]
    pub across_channels: bool,
    /// Units removed by the last step, in multiples of the region's size in units.
    #[arg(long, default_value_t = 2.0)]
    pub budget: f32,
    /// Skip replacing each channel by its baseline (the per-channel evidence).
    #[arg(long)]
    pub no_ablation: bool,
    #[command(flatten)]
    pub method: MethodArgs,
    /// Also write the JSON (curves, areas, shares, ablation) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Args {
    pub fn evaluation_options(&self) -> Result<EvaluationOptions, String> {
        if self.steps == 0 || self.patch == 0 || !(self.budget > 0.0) {
            return Err("--steps, --patch and --budget must be positive".into());
        }
        Ok(EvaluationOptions {
            methods: self.method.options(),
            perturbation: PerturbationOptions {
                steps: self.steps,
                patch: self.patch,
                across_channels: self.across_channels,
                budget: self.budget,
                seed: self.method.seed,
            },
            baseline: self.method.baseline()?,
            ablation: !self.no_ablation,
        })
    }
}

/// The methods named, LRP composites with the study's ZBox bounds.
pub fn methods(names: &[String], p: &seglrp::engine::Prepared) -> Result<Vec<Method>, String> {
    names.iter().map(|n| Method::parse(n.trim(), |c| seglrp::engine::composite(c, p))).collect()
}

/// The table printed to stderr: one row per method.
pub fn table(e: &faith::Evaluation, channels: &[String]) -> String {
    let mut s = format!(
        "{:<24} {:>10} {:>10} {:>8} {:>10}  shares ({})\n",
        "method",
        "AOPC MoRF",
        "AOPC LeRF",
        "ABPC",
        "Dice MoRF",
        channels.join(", ")
    );
    for m in &e.methods {
        let shares = m
            .shares
            .as_ref()
            .map_or("—".to_string(), |v| v.iter().map(|x| format!("{:.2}", x)).collect::<Vec<_>>().join(" "));
        s += &format!(
            "{:<24} {:>10.3} {:>10.3} {:>8.3} {:>10.3}  {shares}\n",
            m.method, m.curves.aopc_morf, m.curves.aopc_lerf, m.curves.abpc, m.curves.dice_aopc_morf
        );
    }
    if let Some(a) = &e.ablation {
        s += "channel replaced by its baseline: logit lost / Dice lost\n";
        for (name, a) in channels.iter().zip(a) {
            s += &format!("  {name:<20} {:>7.3} / {:>6.3}\n", a.logit_drop, a.dice_drop);
        }
    }
    s
}

pub fn run(args: Args) -> Result<(), String> {
    let options = args.evaluation_options()?;
    let (study, device, model) = args.common.open(&args.files)?;
    let selection = match args.region.as_str() {
        "component" => Selection::Component(args.voxel.ok_or("--region component needs --voxel")?),
        name => Selection::parse(name)?,
    };
    let s = segment(&model, study, &device)?;
    let area = s.area(&selection, args.class.0)?;
    if !area.iter().any(|v| *v != 0) {
        return Err(format!(
            "the region \"{}\" is empty in this study: {}",
            selection.name(),
            selection.empty_message()
        ));
    }
    let methods = methods(&args.methods, &s.prepared)?;
    let t = Instant::now();
    let probe = pollster::block_on(faith::Probe::new(&s.prepared, &area, args.class.0))?;
    let total = faith::evaluation::passes(&probe, &methods, &options);
    let pb = crate::progress::bar(total as u64, "faithfulness: forward passes");
    let e = pollster::block_on(faith::evaluate(&probe, &methods, &options, &mut crate::progress::ticks(&pb)))?;
    pb.finish_and_clear();
    let channels = model.channel_names();
    eprint!("{}", table(&e, &channels));
    eprintln!(
        "{} voxels, window {:?} of the grid, {total} passes in {:.1} s",
        e.voxels,
        probe.window().dims(),
        t.elapsed().as_secs_f64()
    );
    let json = serde_json::json!({
        "files": s.study.sources,
        "region": selection.name(),
        "class": args.class.0,
        "channels": channels,
        "seconds": t.elapsed().as_secs_f64(),
        "faithfulness": e,
    });
    let text = serde_json::to_string_pretty(&json).expect("plain JSON");
    if let Some(path) = &args.json {
        write(path, text.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}

/// `seglrp cohort --faithfulness`: OUT/faithfulness.csv (one row per patient, region and
/// method), OUT/faithfulness.md (per region and method the mean AOPCs over the patients, and
/// Spearman's correlation of the shares with the logit lost per channel over every patient's
/// channels) and OUT/faithfulness-<region>.svg (the mean curves). Returns the files written.
pub fn write_cohort(
    out: &std::path::Path,
    settings: &crate::cohort::Settings,
    results: &[crate::cohort::PatientResult],
) -> Result<Vec<PathBuf>, String> {
    use seglrp::faithfulness::ablation::spearman;
    let mut csv = String::from("patient,region,method,voxels,aopc_morf,aopc_lerf,abpc,dice_aopc_morf\n");
    let mut md = format!(
        "Faithfulness over {} patients ({}; baseline: background; steps: {}). AOPC: mean (standard deviation).\n",
        results.len(),
        settings.model,
        settings.faithfulness.as_ref().map_or(0, |f| f.1)
    );
    let mut written = Vec::new();
    for region in &settings.regions {
        let rows: Vec<(&str, &crate::cohort::RegionResult)> = results
            .iter()
            .filter_map(|p| p.regions.iter().find(|r| &r.region == region).map(|r| (p.patient.as_str(), r)))
            .filter(|(_, r)| r.faithfulness.is_some())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let methods: Vec<String> =
            rows[0].1.faithfulness.as_ref().map(|f| f.iter().map(|m| m.method.clone()).collect()).unwrap_or_default();
        md += &format!(
            "\n### Region \"{region}\": {} patients\n\n| method | AOPC MoRF ↑ | AOPC LeRF ↓ | ABPC ↑ | \
             Dice AOPC MoRF ↑ | shares vs logit lost (Spearman) |\n|---|---|---|---|---|---|\n",
            rows.len()
        );
        let mut curves = Vec::new();
        for (k, method) in methods.iter().enumerate() {
            let of: Vec<(&str, &crate::cohort::RegionResult, &crate::cohort::Faithfulness)> = rows
                .iter()
                .filter_map(|(p, r)| r.faithfulness.as_ref().and_then(|f| f.get(k)).map(|m| (*p, *r, m)))
                .collect();
            for (p, r, m) in &of {
                csv += &format!(
                    "{},{region},{method},{},{},{},{},{}\n",
                    p.replace(',', "_"),
                    r.voxels,
                    m.aopc_morf,
                    m.aopc_lerf,
                    m.abpc,
                    m.dice_aopc_morf
                );
            }
            let stat = |f: &dyn Fn(&crate::cohort::Faithfulness) -> f32| {
                let v: Vec<f64> = of.iter().map(|(_, _, m)| f(m) as f64).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt();
                format!("{mean:.3} ({sd:.3})")
            };
            // Every patient's channels pooled: (share, logit lost) pairs.
            let (shares, lost): (Vec<f32>, Vec<f32>) = of
                .iter()
                .filter_map(|(_, r, m)| Some(m.shares.as_ref()?.iter().copied().zip(r.logit_lost.clone()?)))
                .flatten()
                .unzip();
            let rho = spearman(&shares, &lost).map_or("—".into(), |r| format!("{r:.2} ({} pairs)", shares.len()));
            md += &format!(
                "| {method} | {} | {} | {} | {} | {rho} |\n",
                stat(&|m| m.aopc_morf),
                stat(&|m| m.aopc_lerf),
                stat(&|m| m.abpc),
                stat(&|m| m.dice_aopc_morf)
            );
            let mean_curve = |pick: &dyn Fn(&crate::cohort::Faithfulness) -> &Vec<f32>| -> Vec<f32> {
                let n = of.iter().map(|(_, _, m)| pick(m).len()).min().unwrap_or(0);
                (0..n).map(|i| of.iter().map(|(_, _, m)| pick(m)[i]).sum::<f32>() / of.len() as f32).collect()
            };
            curves.push((method.clone(), mean_curve(&|m| &m.morf), mean_curve(&|m| &m.lerf)));
        }
        let svg = curves_svg(&curves, &format!("Region perturbation, region \"{region}\": {} patients", rows.len()));
        let path = out.join(format!("faithfulness-{region}.svg"));
        write(&path, svg.as_bytes())?;
        write(&path.with_extension("png"), &crate::figure::png(&svg)?)?;
        written.push(path.clone());
        written.push(path.with_extension("png"));
    }
    let (csv_path, md_path) = (out.join("faithfulness.csv"), out.join("faithfulness.md"));
    write(&csv_path, csv.as_bytes())?;
    write(&md_path, md.as_bytes())?;
    eprint!("{md}");
    written.splice(0..0, [csv_path, md_path]);
    Ok(written)
}

/// MoRF (solid) and LeRF (dashed) curves per method, the score as a fraction of the unperturbed
/// one against the step.
pub fn curves_svg(curves: &[(String, Vec<f32>, Vec<f32>)], title: &str) -> String {
    const COLOURS: [&str; 12] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        "#393b79", "#000000",
    ];
    let (w, h, left, right, top, bottom) = (900.0, 560.0, 70.0, 230.0, 50.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values = curves.iter().flat_map(|(_, m, l)| m.iter().chain(l)).copied().filter(|v| v.is_finite());
    let (lo, hi) = values.fold((0f32, 1f32), |(a, b), v| (a.min(v), b.max(v)));
    let steps = curves.iter().map(|(_, m, _)| m.len()).max().unwrap_or(2).max(2) - 1;
    let x = |k: usize| left + pw * k as f32 / steps as f32;
    let y = |v: f32| top + ph * (hi - v) / (hi - lo).max(1e-6);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"Ubuntu\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">{title}</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\n\
         <text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">step (values replaced: solid most relevant \
         first, dashed least relevant first)</text>\n\
         <text x=\"18\" y=\"{}\" font-size=\"14\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">score / \
         unperturbed</text>\n",
        left + pw / 2.0,
        y(0.0),
        left + pw,
        y(0.0),
        left + pw / 2.0,
        h - 15.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for v in [lo, 0.0, 1.0, hi] {
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{v:.2}</text>\n",
            left - 6.0,
            y(v) + 4.0
        );
    }
    for (i, (name, morf, lerf)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (curve, dash) in [(morf, ""), (lerf, " stroke-dasharray=\"6 4\"")] {
            let points: Vec<String> =
                curve.iter().enumerate().map(|(k, v)| format!("{:.1},{:.1}", x(k), y(*v))).collect();
            s += &format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
                points.join(" ")
            );
        }
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"{colour}\">{name}</text>\n",
            w - right + 12.0,
            top + 18.0 * i as f32 + 10.0
        );
    }
    s + "</svg>\n"
}
