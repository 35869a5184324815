//! `seglrp explain`: segment a study and explain a voxel or a region with LRP.

use std::path::{Path, PathBuf};
use std::time::Instant;

use seglrp::engine;
use seglrp::io::nifti;
use seglrp::io::volume::Volume;
use seglrp::spatial::region::Selection;

use crate::common::{class_choice, gzip_wanted, numbers, write, ClassChoice, StudyOptions};
use crate::segment::{composite, segment};

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: StudyOptions,
    /// Voxel to explain, as x,y,z (NIfTI voxel indices); with --region component, a voxel
    /// of the tumour component to explain.
    #[arg(long, value_parser = numbers::<3>)]
    pub voxel: Option<[usize; 3]>,
    /// Class to explain (the model's class index; the liver model: 0 background, 1 tumour), or
    /// "foreground": every foreground voxel of the region for its own class (a voxel: its
    /// predicted class), all in the same two passes.
    #[arg(long, default_value = "1", value_parser = class_choice)]
    pub class: ClassChoice,
    /// Explain a region instead of one voxel, as the exact two-pass region map
    /// M_A = Σ M_a / ΣM_a: "component" (the predicted tumour's connected component that
    /// holds --voxel), "all" (all predicted tumour), or against the label file "tp", "fn",
    /// "fp" (true positives, false negatives, false positives).
    #[arg(long, value_parser = ["component", "all", "tp", "fn", "fp"], conflicts_with_all = ["bbox", "mask"])]
    pub region: Option<String>,
    /// Explain the voxels of a box x0,y0,z0,x1,y1,z1 (start inclusive, end exclusive).
    #[arg(long = "box", value_name = "X0,Y0,Z0,X1,Y1,Z1", value_parser = numbers::<6>, conflicts_with = "mask")]
    pub bbox: Option<[usize; 6]>,
    /// Explain the voxels of a mask (NIfTI on the study's grid, non-zero = in the region).
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// LRP composite: Epsilon, EpsilonPlus, EpsilonGammaBox, EpsilonAlpha2Beta1,
    /// EpsilonPlusFlat or EpsilonAlpha2Beta1Flat (Zennit's names), or a JSON file with a
    /// rule per layer (README "LRP").
    #[arg(long, default_value = engine::DEFAULT_COMPOSITE)]
    pub composite: String,
    /// Write the relevance (one volume per channel, float32, the study's affine) as NIfTI here.
    #[arg(long)]
    pub relevance: Option<PathBuf>,
    /// Write the predicted segmentation (uint8, the class of each voxel) as NIfTI here.
    #[arg(long)]
    pub segmentation: Option<PathBuf>,
    /// Choose regions in this segmentation (class indices, NIfTI on the study's grid; say
    /// nnUNetv2_predict's output, or the page's export) instead of the model's own prediction.
    /// The maps are the model's as always; only which voxels form a region changes.
    #[arg(long, conflicts_with = "predictor")]
    pub prediction: Option<PathBuf>,
    /// Also write the relevance (channels × voxels, float32 little-endian, file order) here.
    #[arg(long)]
    pub raw: Option<PathBuf>,
    /// Also write the JSON summary (with the per-sequence shares) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Propagate through the whole volume instead of the explained voxels' receptive field
    /// (the same map, slower: for measuring what cropping saves).
    #[arg(long)]
    pub no_crop: bool,
    /// For an nnU-Net model folder: explain nnU-Net's predictor (its logit is the
    /// Gaussian-weighted mean of the windows, and mirrorings, that hold a voxel) on the grid the
    /// network reads (the study cropped to its non-zero box and resampled to the plans'
    /// spacing), at --voxel or over --region all|component (the predictor's labels there);
    /// --relevance is written on that grid.
    #[arg(long, conflicts_with_all = ["bbox", "mask", "segmentation", "no_crop"])]
    pub predictor: bool,
    /// With --predictor: without nnU-Net's test-time mirroring.
    #[arg(long, requires = "predictor")]
    pub no_mirroring: bool,
}

/// `--predictor`: one voxel of nnU-Net's blended prediction, explained on the network's grid.
fn run_predictor(
    args: &Args,
    class: usize,
    study: seglrp::io::study::Study,
    model: &crate::common::Model,
    device: &burn::prelude::Device,
) -> Result<(), String> {
    use seglrp::spatial::{predictor, sliding::Patches};
    let (Some(how), Some(patch)) = (&model.card.inference, model.card.patch_size) else {
        return Err("--predictor runs nnU-Net's predictor, which needs an nnU-Net model folder whose plans say how \
                    (README \"Models\")"
            .into());
    };
    let t = Instant::now();
    let input = predictor::network_input(&model.card, model.normalisation.as_ref(), &study.volume)?;
    let at = match args.voxel {
        Some(voxel) => Some(input.voxel_of(voxel).ok_or_else(|| {
            format!(
                "voxel {voxel:?} lies outside the study's non-zero box, which nnU-Net labels background without \
                 running the network"
            )
        })?),
        None => None,
    };
    let mirror = if args.no_mirroring { vec![] } else { how.mirror_axes.clone() };
    let blend = engine::Blend {
        graph: &model.graph,
        input: &input.volume,
        patches: Patches::new(patch),
        mirror: &mirror,
        composite: &args.composite,
    };
    let (relevance, mut json) = match (args.region.as_deref(), at) {
        (None, Some(at)) => {
            let pb = crate::progress::bar(1, "explaining: windows × mirrorings");
            let e =
                pollster::block_on(engine::explain_blended(&blend, at, class, device, crate::progress::ticks(&pb)))?;
            pb.finish_and_clear();
            let mut json = serde_json::to_value(&e).expect("plain JSON");
            json["region"] = serde_json::json!("voxel");
            (e.relevance, json)
        }
        (None, None) => return Err("give --voxel or --region: what to explain".into()),
        (Some(name), _) => {
            let selection = match name {
                "component" => Selection::Component(at.ok_or("--region component needs --voxel")?),
                "all" => Selection::AllPredicted,
                other => {
                    return Err(format!(
                        "--predictor explains --region all or component; \"{other}\" needs the label on the network's \
                         grid"
                    ))
                }
            };
            // The predictor's labels on the network's grid: its float16 blend's highest logit.
            let pb = crate::progress::bar(1, "segmenting: windows");
            let b = pollster::block_on(seglrp::spatial::sliding::blend(
                blend.graph,
                blend.input,
                blend.patches,
                blend.mirror,
                device,
                crate::progress::ticks(&pb),
            ))?;
            pb.finish_and_clear();
            let labels = seglrp::spatial::sliding::argmax(&b.half, b.classes);
            let area = selection.mask_of_class(&labels, None, class, input.volume.dims)?;
            if !area.iter().any(|v| *v != 0) {
                return Err(format!(
                    "the region \"{name}\" is empty on the network's grid: {}",
                    selection.empty_message()
                ));
            }
            let pb = crate::progress::bar(1, "explaining: two passes per window × mirroring");
            let e = pollster::block_on(engine::explain_blended_region(
                &blend,
                &area,
                class,
                device,
                crate::progress::ticks(&pb),
            ))?;
            pb.finish_and_clear();
            let mut json = serde_json::to_value(&e).expect("plain JSON");
            json["region"] = serde_json::json!(name);
            (e.relevance, json)
        }
    };
    eprintln!("nnU-Net's predictor explained: LRP {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    if let Some(at) = at {
        json["voxel"] = serde_json::json!(at);
    }
    json["study_voxel"] = serde_json::json!(args.voxel);
    json["grid"] = serde_json::json!(input.volume.dims);
    json["mirror_axes"] = serde_json::json!(mirror);
    json["composite"] = serde_json::json!(args.composite);
    let channels: Vec<&str> = model.card.channels.iter().map(|c| c.name.as_str()).collect();
    json["sequences"] = serde_json::json!(channels);
    json["class_name"] = serde_json::json!(model.card.classes[class]);
    if let Some(path) = &args.raw {
        write(path, &relevance.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    if let Some(path) = &args.relevance {
        let rel = Volume { data: relevance, ..input.volume.clone() };
        write(path, &nifti::write_nifti(&rel, gzip_wanted(path)))?;
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({ "files": study.sources, "explanation": json }))
        .expect("plain JSON");
    if let Some(path) = &args.json {
        write(path, text.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}

/// A mask file for `--mask`: a NIfTI on the study's grid, non-zero = in the region.
pub fn read_mask(path: &Path, like: &Volume) -> Result<Vec<u8>, String> {
    Ok(read_on_grid(path, like, "a region mask")?.data.iter().map(|v| u8::from(*v != 0.0)).collect())
}

/// A segmentation for `--prediction`: class indices below `classes`, on the study's grid.
fn read_prediction(path: &Path, like: &Volume, classes: usize) -> Result<Vec<u8>, String> {
    let v = read_on_grid(path, like, "a segmentation")?;
    if let Some(x) = v.data.iter().find(|x| !(x.fract() == 0.0 && **x >= 0.0 && (**x as usize) < classes)) {
        return Err(format!("{}: holds {x}, not a class index 0 to {}", path.display(), classes - 1));
    }
    Ok(v.data.iter().map(|x| *x as u8).collect())
}

/// One 3-D NIfTI volume on `like`'s grid (`what` names it in messages).
fn read_on_grid(path: &Path, like: &Volume, what: &str) -> Result<Volume, String> {
    let name = path.display().to_string();
    let n = seglrp::io::study::read_input(&seglrp::io::study::Input::path(path)).map_err(|e| format!("{name}: {e}"))?;
    if n.volume.channels != 1 {
        return Err(format!("{name}: {what} must be one 3-D volume, this file has {}", n.volume.channels));
    }
    seglrp::io::study::same_grid(("the study", like), (&name, &n.volume)).map_err(|e| e.to_string())?;
    Ok(n.volume)
}

pub fn run(args: Args) -> Result<(), String> {
    let (study, device, model) = args.common.open(&args.files)?;
    let device = &device;
    let class_name = args.class.name(&model.card.classes)?;
    let dims = study.volume.dims;
    if let Some(v) = args.voxel {
        if v.iter().zip(&dims).any(|(v, d)| v >= d) {
            return Err(format!("voxel {v:?} lies outside the volume {dims:?}"));
        }
    }
    if args.predictor {
        let class = args.class.0.ok_or("--predictor explains one class at a time: give --class N")?;
        return run_predictor(&args, class, study, &model, device);
    }
    let selection = match (args.region.as_deref(), args.bbox, &args.mask) {
        (Some("component"), _, _) => {
            Some(Selection::Component(args.voxel.ok_or("--region component needs --voxel (a voxel in the tumour)")?))
        }
        (Some(name), _, _) => Some(Selection::parse(name)?),
        (None, Some(b), _) => Some(Selection::Box(b)),
        (None, None, Some(path)) => Some(Selection::Mask(read_mask(path, &study.volume)?)),
        (None, None, None) => {
            args.voxel.ok_or("give --voxel, --region, --box or --mask: what to explain")?;
            None
        }
    };
    let mut s = segment(&model, study, device)?;
    s.prepared.crop = !args.no_crop;
    if let Some(path) = &args.prediction {
        s.mask = read_prediction(path, &s.study.volume, model.card.classes.len())?;
    }
    let t = Instant::now();
    let composite = composite(&args.composite, &s.prepared)?;
    let (values, mut explanation) = match &selection {
        None => {
            let voxel = args.voxel.expect("checked above");
            let own = s.mask[s.study.volume.index(voxel)] as usize;
            let e = pollster::block_on(engine::explain(&s.prepared, voxel, args.class.0.unwrap_or(own), &composite))?;
            let mut json = serde_json::to_value(&e).expect("plain JSON");
            json["region"] = serde_json::json!("voxel");
            json["predicted_class_at_voxel"] = serde_json::json!(s.mask[s.study.volume.index(voxel)]);
            (e.relevance, json)
        }
        Some(sel) => {
            let e = s.explain_region(sel, args.class.0, &composite)?.ok_or_else(|| {
                format!("the region \"{}\" is empty in this study: {}", sel.name(), sel.empty_message())
            })?;
            let mut json = serde_json::to_value(&e).expect("plain JSON");
            json["region"] = serde_json::json!(sel.name());
            (e.relevance, json)
        }
    };
    if explanation["shares"].is_null() {
        eprintln!(
            "note: {}: every voxel's relevance is zero or negative, so no shares are reported",
            engine::NO_POSITIVE_RELEVANCE
        );
    }
    explanation["composite"] = serde_json::json!(args.composite);
    let channels: Vec<&str> = model.card.channels.iter().map(|c| c.name.as_str()).collect();
    explanation["sequences"] = serde_json::json!(channels);
    explanation["class_name"] = serde_json::json!(class_name);
    eprintln!("segmentation {:.0} ms, LRP {:.0} ms", s.seconds * 1e3, t.elapsed().as_secs_f64() * 1e3);
    let vol = &s.study.volume;
    if let Some(path) = &args.raw {
        write(path, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    if let Some(path) = &args.relevance {
        let rel = Volume { data: values, ..vol.clone() };
        write(path, &nifti::write_nifti(&rel, gzip_wanted(path)))?;
    }
    if let Some(path) = &args.segmentation {
        write(path, &nifti::write_label(&s.mask, vol, gzip_wanted(path)))?;
    }
    let mut summary = s.summary();
    summary["explanation"] = explanation;
    let text = serde_json::to_string_pretty(&summary).expect("plain JSON");
    if let Some(path) = &args.json {
        write(path, text.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}
