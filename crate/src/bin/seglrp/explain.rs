//! `seglrp segment` and `seglrp explain`: one study through the engine, the way the page does
//! it (one whole-volume pass, whose activations LRP needs), so that both give the same numbers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Device;
use seglrp::engine::{self, Prepared};
use seglrp::region::{self, Selection};
use seglrp::study::Study;
use seglrp::unet::UNet;
use seglrp::volume::{Volume, SEQUENCES};
use seglrp::{metrics, nifti, window};

use crate::{gzip_wanted, write};

/// A study with its forward pass done and its predicted tumour.
pub struct Segmented {
    pub study: Study,
    pub prepared: Prepared,
    /// 1 = predicted tumour, file order.
    pub mask: Vec<u8>,
    pub seconds: f64,
}

pub fn segment(net: &UNet, study: Study, device: &Device) -> Result<Segmented, String> {
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
        net: &UNet,
        selection: &Selection,
        class: usize,
        composite: &seglrp::lrp::Composite,
    ) -> Result<Option<engine::RegionExplanation>, String> {
        let vol = &self.study.volume;
        let area = selection.mask(&self.mask, self.study.label.as_deref(), vol.dims)?;
        if !area.iter().any(|v| *v != 0) {
            return Ok(None);
        }
        pollster::block_on(engine::explain_region(net, &self.prepared, &area, class, composite)).map(Some)
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

/// A mask file for `--mask`: a NIfTI on the study's grid, non-zero = in the region.
pub fn read_mask(path: &Path, like: &Volume) -> Result<Vec<u8>, String> {
    let name = path.display().to_string();
    let n = seglrp::study::read_input(&seglrp::study::Input::path(path)).map_err(|e| format!("{name}: {e}"))?;
    if n.volume.channels != 1 {
        return Err(format!("{name}: a region mask must be one 3-D volume, this file has {}", n.volume.channels));
    }
    seglrp::study::same_grid(("the study", like), (&name, &n.volume)).map_err(|e| e.to_string())?;
    Ok(n.volume.data.iter().map(|v| u8::from(*v != 0.0)).collect())
}

pub struct SegmentArgs {
    pub out: PathBuf,
    pub windows: bool,
}

pub fn segment_command(net: &UNet, study: Study, args: SegmentArgs, device: &Device) -> Result<(), String> {
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

pub struct ExplainArgs {
    pub voxel: Option<[usize; 3]>,
    pub class: usize,
    pub region: Option<String>,
    pub bbox: Option<[usize; 6]>,
    pub mask: Option<PathBuf>,
    pub composite: String,
    pub relevance: Option<PathBuf>,
    pub segmentation: Option<PathBuf>,
    pub raw: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub crop: bool,
}

pub fn explain_command(net: &UNet, study: Study, args: ExplainArgs, device: &Device) -> Result<(), String> {
    let dims = study.volume.dims;
    if let Some(v) = args.voxel {
        if v.iter().zip(&dims).any(|(v, d)| v >= d) {
            return Err(format!("voxel {v:?} lies outside the volume {dims:?}"));
        }
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
    let mut s = segment(net, study, device)?;
    s.prepared.crop = args.crop;
    let t = Instant::now();
    let composite = composite(&args.composite, &s.prepared)?;
    let (values, mut explanation) = match &selection {
        None => {
            let voxel = args.voxel.expect("checked above");
            let e = pollster::block_on(engine::explain(net, &s.prepared, voxel, args.class, &composite))?;
            let mut json = serde_json::to_value(&e).expect("plain JSON");
            json["region"] = serde_json::json!("voxel");
            json["predicted_class_at_voxel"] = serde_json::json!(s.mask[s.study.volume.index(voxel)]);
            (e.relevance, json)
        }
        Some(sel) => {
            let e = s
                .explain_region(net, sel, args.class, &composite)?
                .ok_or_else(|| format!("the region \"{}\" is empty in this study: nothing to explain", sel.name()))?;
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
    explanation["sequences"] = serde_json::json!(SEQUENCES);
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
