//! `seglrp segment`: one study through the engine, the way the page does it (one whole-volume
//! pass, whose activations LRP needs, so that `explain` and the page give the same numbers), or
//! in sliding windows. Its stages are shared with `explain` and `cohort`.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::Device;
use seglrp::engine::{self, Prepared};
use seglrp::model::Graph;
use seglrp::region::{self, Selection};
use seglrp::study::Study;
use seglrp::{metrics, nifti, window};

use crate::common::{gzip_wanted, write, StudyOptions};

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
}

/// A study with its forward pass done and its predicted tumour.
pub struct Segmented {
    pub study: Study,
    pub prepared: Prepared,
    /// 1 = predicted tumour, file order.
    pub mask: Vec<u8>,
    pub seconds: f64,
}

pub fn segment(net: &Graph, study: Study, device: &Device) -> Result<Segmented, String> {
    let t = Instant::now();
    let prepared = engine::prepare(net, &study.volume, device)?;
    let mask = pollster::block_on(engine::segmentation(&prepared))?;
    Ok(Segmented { study, prepared, mask, seconds: t.elapsed().as_secs_f64() })
}

impl Segmented {
    pub fn dice(&self) -> Option<f32> {
        self.study.label.as_ref().and_then(|l| metrics::dice(&self.mask, l))
    }

    /// The region map of `class` over `selection`; `Ok(None)` when the region is empty.
    pub fn explain_region(
        &self,
        selection: &Selection,
        class: usize,
        composite: &seglrp::lrp::Composite,
    ) -> Result<Option<engine::RegionExplanation>, String> {
        let vol = &self.study.volume;
        let area = selection.mask(&self.mask, self.study.label.as_deref(), vol.dims)?;
        if !area.iter().any(|v| *v != 0) {
            return Ok(None);
        }
        pollster::block_on(engine::explain_region(&self.prepared, &area, class, composite)).map(Some)
    }

    pub fn summary(&self) -> serde_json::Value {
        summary(&self.study, &self.mask)
    }
}

/// What a segmentation found, for JSON output.
pub fn summary(study: &Study, mask: &[u8]) -> serde_json::Value {
    let (_, sizes) = region::components(mask, study.volume.dims);
    serde_json::json!({
        "files": study.sources,
        "dims": study.volume.dims,
        "tumour_voxels": mask.iter().filter(|m| **m == 1).count(),
        "components": sizes,
        "labelled_voxels": study.label.as_ref().map(|l| l.iter().filter(|v| **v == 1).count()),
        "dice": study.label.as_ref().and_then(|l| metrics::dice(mask, l)),
        // NaN/infinite voxels per sequence that were set to 0 (more is refused).
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
    let (study, device, net) = args.common.open(&args.files)?;
    let (net, device) = (&net, &device);
    let t = Instant::now();
    let (study, mask) = if args.windows {
        // Sliding windows: memory bounded by the window, for studies too large for one pass.
        let mask =
            pollster::block_on(window::segment(net, &study.volume, window::Windows::default(), device, |_, _| {}))?;
        (study, mask)
    } else {
        let s = segment(net, study, device)?;
        (s.study, s.mask)
    };
    eprintln!("segmentation {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    write(&args.out, &nifti::write_label(&mask, &study.volume, gzip_wanted(&args.out)))?;
    let mut summary = summary(&study, &mask);
    summary["segmentation"] = serde_json::json!(args.out.display().to_string());
    summary["method"] = serde_json::json!(if args.windows { "sliding windows" } else { "whole volume" });
    println!("{}", serde_json::to_string_pretty(&summary).expect("plain JSON"));
    Ok(())
}
