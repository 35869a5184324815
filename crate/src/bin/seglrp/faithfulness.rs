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
        let shares = m.shares.as_ref().map_or("—".to_string(), |v| {
            v.iter().map(|x| format!("{:.2}", x)).collect::<Vec<_>>().join(" ")
        });
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
        return Err(format!("the region \"{}\" is empty in this study: {}", selection.name(), selection.empty_message()));
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
