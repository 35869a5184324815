//! `seglrp segment`: one study through the engine, the way the page does it (one whole-volume
//! pass, whose activations LRP needs, so that `explain` and the page give the same numbers), in
//! sliding windows, or, for an nnU-Net model folder, as nnU-Net's predictor does it. Its stages
//! are shared with `explain` and `cohort`.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::Device;
use seglrp::engine::{self, Prepared};
use seglrp::io::nifti;
use seglrp::io::study::Study;
use seglrp::spatial::metrics;
use seglrp::spatial::region::{self, Selection};
use seglrp::spatial::{predictor, sliding};

use crate::common::{gzip_wanted, write, Model, StudyOptions};

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: StudyOptions,
    #[arg(long)]
    pub out: PathBuf,
    /// Sliding windows (128×128×32, half overlapping) instead of one whole-volume pass: for
    /// studies too large for memory. `explain` and the page use the whole-volume pass.
    #[arg(long)]
    pub windows: bool,
    /// For an nnU-Net model folder: one pass over the study on its own grid (what `explain`
    /// explains) instead of nnU-Net's predictor (the study resampled to the plans' spacing,
    /// sliding windows of the plans' patch).
    #[arg(long, conflicts_with = "windows")]
    pub whole: bool,
    /// nnU-Net's predictor without test-time mirroring (nnU-Net's `--disable_tta`): one pass per
    /// window instead of up to eight.
    #[arg(long)]
    pub no_mirroring: bool,
}

/// A study with its forward pass done and its predicted tumour.
pub struct Segmented {
    pub study: Study,
    pub prepared: Prepared,
    /// The predicted class of each voxel (the liver model: 1 = tumour), file order.
    pub mask: Vec<u8>,
    pub seconds: f64,
    /// The model's class names.
    pub classes: Vec<String>,
}

pub fn segment(model: &Model, study: Study, device: &Device) -> Result<Segmented, String> {
    let t = Instant::now();
    let prepared = model.prepare(&study.volume, device, seglrp::engine::PrepareOptions::default())?;
    let mask = pollster::block_on(engine::segmentation(&prepared))?;
    let classes = model.card.classes.clone();
    Ok(Segmented { study, prepared, mask, seconds: t.elapsed().as_secs_f64(), classes })
}

/// Voxels of class `class` (1) and the rest (0): regions are chosen among one class's voxels.
fn of_class(labels: &[u8], class: usize) -> Vec<u8> {
    labels.iter().map(|&l| u8::from(l as usize == class)).collect()
}

impl Segmented {
    /// The voxels of `selection` (1 = in) chosen among those predicted, or labelled, as `class`
    /// (any foreground for class 0); for all foreground (`None`) each holding its own class.
    pub fn area(&self, selection: &Selection, class: Option<usize>) -> Result<Vec<u8>, String> {
        selection.classes_of(&self.mask, self.study.label.as_deref(), class, self.study.volume.dims)
    }

    /// The region map of `class` (`None`: all foreground) over `selection` ([`Segmented::area`]);
    /// `Ok(None)` when the region is empty.
    pub fn explain_region(
        &self,
        selection: &Selection,
        class: Option<usize>,
        composite: &seglrp::lrp::Composite,
    ) -> Result<Option<engine::RegionExplanation>, String> {
        let area = self.area(selection, class)?;
        if !area.iter().any(|v| *v != 0) {
            return Ok(None);
        }
        pollster::block_on(engine::explain_regions(&self.prepared, &[&area], class, composite, |_, _| {}))
            .map(|mut maps| maps.pop())
    }

    pub fn summary(&self) -> serde_json::Value {
        summary(&self.study, &self.mask, &self.classes)
    }
}

/// What a segmentation found, for JSON output: for the liver model its tumour; for any model,
/// each class's voxels (and Dice against the label).
pub fn summary(study: &Study, mask: &[u8], classes: &[String]) -> serde_json::Value {
    let (_, sizes) = region::components(&of_class(mask, 1), study.volume.dims);
    let per_class: serde_json::Map<String, serde_json::Value> = classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let dice = study.label.as_ref().and_then(|l| metrics::dice(&of_class(mask, k), &of_class(l, k)));
            let voxels = mask.iter().filter(|m| **m as usize == k).count();
            (name.clone(), serde_json::json!({ "voxels": voxels, "dice": dice }))
        })
        .collect();
    serde_json::json!({
        "files": study.sources,
        "dims": study.volume.dims,
        "tumour_voxels": mask.iter().filter(|m| **m == 1).count(),
        "components": sizes,
        "labelled_voxels": study.label.as_ref().map(|l| l.iter().filter(|v| **v == 1).count()),
        "dice": study.label.as_ref().and_then(|l| metrics::dice(&of_class(mask, 1), &of_class(l, 1))),
        "classes": per_class,
        // NaN/infinite voxels per channel that were set to 0 (more is refused).
        "non_finite_voxels": study.non_finite,
    })
}

/// The composite by name, or read from a JSON file.
pub fn composite(spec: &str, prepared: &Prepared) -> Result<seglrp::lrp::Composite, String> {
    let spec = if spec.ends_with(".json") {
        std::fs::read_to_string(spec).map_err(|e| format!("{spec}: {e}"))?
    } else {
        spec.to_string()
    };
    engine::composite(&spec, prepared)
}

pub fn run(args: Args) -> Result<(), String> {
    let (study, device, model) = args.common.open(&args.files)?;
    let device = &device;
    let t = Instant::now();
    // nnU-Net's own inference where the model folder says how, unless one pass is asked for.
    let nnunet = model.card.inference.is_some() && !args.whole;
    let (study, mask, method) = if nnunet {
        let pb = crate::progress::bar(1, "segmenting as nnU-Net: windows");
        let p = pollster::block_on(predictor::predict(
            &model.graph,
            &model.card,
            model.normalisation.as_ref(),
            &study.volume,
            !args.no_mirroring,
            device,
            crate::progress::ticks(&pb),
        ))?;
        pb.finish_and_clear();
        let [x, y, z] = p.grid;
        let mirrored = match &model.card.inference {
            Some(i) if !args.no_mirroring && !i.mirror_axes.is_empty() => {
                format!(", mirrored along {:?}", i.mirror_axes)
            }
            _ => String::new(),
        };
        let method = format!(
            "nnU-Net's predictor: {} windows{mirrored} on the cropped study resampled to {x}×{y}×{z}",
            p.windows
        );
        (study, p.labels, method)
    } else if args.windows {
        if !model.is_liver() || args.common.normalisation.is_some() {
            return Err("--windows runs the liver demo's models; other models are windowed by themselves where \
                        their norms allow (README \"Large studies\")"
                .into());
        }
        // Sliding windows: memory bounded by the window, for studies too large for one pass.
        let patches = sliding::Patches::default();
        let mask = pollster::block_on(sliding::segment(&model.graph, &study.volume, patches, device, |_, _| {}))?;
        (study, mask, "sliding windows".to_string())
    } else {
        let s = segment(&model, study, device)?;
        (s.study, s.mask, "whole volume".to_string())
    };
    eprintln!("segmentation {:.0} ms ({method})", t.elapsed().as_secs_f64() * 1e3);
    write(&args.out, &nifti::write_label(&mask, &study.volume, gzip_wanted(&args.out)))?;
    let mut summary = summary(&study, &mask, &model.card.classes);
    summary["segmentation"] = serde_json::json!(args.out.display().to_string());
    summary["method"] = serde_json::json!(method);
    println!("{}", serde_json::to_string_pretty(&summary).expect("plain JSON"));
    Ok(())
}
