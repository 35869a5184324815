//! The wasm-bindgen API the Web Worker (`www/worker.js`) calls.
//!
//! State lives in a thread-local and async calls clone what they need out of it before the
//! first `await`: no `RefCell` borrow is ever held across a suspension point, so a second
//! request arriving mid-computation cannot corrupt the first.

use std::cell::RefCell;

use burn::prelude::Device;
use js_sys::{Float32Array, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::engine::{self, Model, Prepared};
use crate::io::study::{self, Role};
use crate::spatial::region::Selection;

use crate::io::volume::Volume;
use crate::model::card::Normalisation;

/// `initThreadPool(n)`: starts rayon's pool on `n` Web Workers sharing this module's memory
/// (the threaded build only; the worker calls it before `init`). wasm-bindgen exports it from
/// the dependency; naming it here keeps the link explicit.
#[cfg(feature = "wasm-threads")]
#[allow(unused_imports)]
pub use wasm_bindgen_rayon::init_thread_pool;

struct State {
    device: Device,
    /// The network, its card and its name as the page shows it (the file the user gave).
    model: Model,
    model_name: String,
    /// The name of `model.normalisation` as the page's menu shows it.
    normalisation_name: Option<String>,
    study: Option<Prepared>,
    /// The study's label (class indices), for the regions compared with it.
    label: Option<Vec<u8>>,
    /// The study's grid (dims, affine; no voxels) for exports.
    geometry: Option<Volume>,
    /// The grids of the files the study was read from, by name: exports may be resampled onto
    /// any of them.
    input_grids: Vec<(String, crate::io::resample::Grid)>,
    /// The GPU's largest storage buffer (bytes), when the page reported one (set_buffer_limit).
    buffer_limit: Option<u64>,
}

impl State {
    /// Forgets the loaded study (its pass, label and grid) when the files, the model or the
    /// normalisation change: what was prepared for the old ones no longer applies.
    fn drop_study(&mut self) {
        self.study = None;
        self.geometry = None;
        self.input_grids.clear();
        self.label = None;
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Posts `{op: 'progress', stage, done, total}` from the worker, for the page's progress bar.
fn progress(stage: &str, done: usize, total: usize) {
    let msg = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&msg, &"op".into(), &"progress".into());
    let _ = js_sys::Reflect::set(&msg, &"stage".into(), &stage.into());
    let _ = js_sys::Reflect::set(&msg, &"done".into(), &(done as f64).into());
    let _ = js_sys::Reflect::set(&msg, &"total".into(), &(total as f64).into());
    // Only in the worker (a window's postMessage wants an origin; the page never calls this).
    let global = js_sys::global();
    if let Ok(post) =
        js_sys::Reflect::get(&global, &"postMessage".into()).and_then(|f| f.dyn_into::<js_sys::Function>())
    {
        let _ = post.call1(&global, &msg);
    }
}

fn js_err(msg: impl std::fmt::Display) -> JsError {
    JsError::new(&msg.to_string())
}

fn with_state<T>(f: impl FnOnce(&mut State) -> Result<T, JsError>) -> Result<T, JsError> {
    STATE.with(|s| match s.borrow_mut().as_mut() {
        Some(state) => f(state),
        None => Err(js_err("the engine is not initialised: call init() first")),
    })
}

/// Opens a device and builds the model. `prefer`: "auto" (WebGPU, else CPU), "webgpu" or a
/// CPU backend name ("cpu", "ndarray", "flex"). Returns the backend that runs, e.g.
/// "webgpu" or "cpu (ndarray)"; with "auto", why WebGPU was not used is logged to the console.
#[wasm_bindgen]
pub async fn init(prefer: String) -> Result<String, JsError> {
    console_error_panic_hook::set_once();
    let (backend, device) = match prefer.as_str() {
        "auto" | "webgpu" => match open_webgpu().await {
            Ok(d) => ("webgpu".to_string(), d),
            Err(e) if prefer == "auto" => {
                web_sys::console::warn_1(&format!("{e}; falling back to the CPU").into());
                cpu("cpu")?
            }
            Err(e) => return Err(js_err(e)),
        },
        name => cpu(name)?,
    };
    let model = Model::bundled(&device).map_err(js_err)?;
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            device,
            model,
            model_name: BUNDLED_NAME.to_string(),
            normalisation_name: None,
            study: None,
            label: None,
            geometry: None,
            input_grids: Vec::new(),
            buffer_limit: None,
        })
    });
    Ok(backend)
}

/// The device's `maxStorageBufferBindingSize`, as the worker read it from the GPUDevice: studies
/// needing a larger tensor are then refused in words instead of failing inside the GPU.
#[wasm_bindgen]
pub fn set_buffer_limit(bytes: f64) -> Result<(), JsError> {
    with_state(|s| {
        s.buffer_limit = (bytes.is_finite() && bytes > 0.0).then_some(bytes as u64);
        Ok(())
    })
}

/// Refuses a study the GPU cannot hold (see [`engine::largest_tensor_bytes`]).
fn check_fits(s: &State, dims: [usize; 3]) -> Result<(), JsError> {
    let Some(limit) = s.buffer_limit else { return Ok(()) };
    let need = engine::largest_tensor_bytes(&s.model.graph, dims);
    if need <= limit {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    Err(js_err(format!(
        "this study ({}×{}×{} voxels) needs GPU buffers of {:.0} MiB and this GPU allows {:.0} MiB: open the page with \
            ?backend=cpu to run it on the CPU, or crop the study",
        dims[0], dims[1], dims[2], mib(need), mib(limit)
    )))
}

fn cpu(name: &str) -> Result<(String, Device), JsError> {
    let device = crate::backend::cpu_device(name).map_err(js_err)?;
    let label = if name == "cpu" { crate::backend::default_cpu_backend() } else { name };
    // The build with relaxed-SIMD multiply-adds says so (the page's badge shows it).
    let kernel = crate::ops::conv::Kernel::detected();
    let simd =
        if kernel == crate::ops::conv::Kernel::RelaxedSimd { format!(", {}", kernel.name()) } else { String::new() };
    Ok((format!("cpu ({label}{simd})"), device))
}

#[cfg(feature = "webgpu")]
async fn open_webgpu() -> Result<Device, String> {
    crate::backend::webgpu_device().await
}

#[cfg(not(feature = "webgpu"))]
async fn open_webgpu() -> Result<Device, String> {
    Err("this build has no WebGPU backend".into())
}

#[derive(Serialize)]
struct StudyInfo<'a> {
    dims: [usize; 3],
    channels: usize,
    spacing: [f32; 3],
    affine: crate::io::geometry::Affine,
    orientation: String,
    sources: &'a [String],
    /// NaN/infinite voxels per channel that were set to 0.
    non_finite: &'a [usize],
    /// Files moved onto the study's grid, in words.
    resampled: &'a [String],
    /// The files whose grids exports can be resampled onto ([`export_relevance`]).
    grids: Vec<&'a str>,
}

/// A file as the page's list shows it: its role in words (a channel of the model, "label", …).
#[derive(Serialize)]
struct Report<'a> {
    name: &'a str,
    role: String,
    info: &'a Option<crate::io::nifti::FileInfo>,
    error: &'a Option<String>,
    /// Set aside, not an obstacle to the study (a scout beside a DICOM series).
    aside: bool,
}

#[derive(Serialize)]
struct Opened<'a> {
    files: Vec<Report<'a>>,
    /// Why the files do not (yet) make a study, when they do not.
    problem: Option<String>,
}

#[derive(Serialize)]
struct Preview<'a> {
    name: &'a str,
    dims: [usize; 3],
    channels: usize,
    affine: crate::io::geometry::Affine,
}

fn set(obj: &JsValue, key: &str, value: &JsValue) -> Result<(), JsError> {
    js_sys::Reflect::set(obj, &key.into(), value).map(|_| ()).map_err(|_| js_err("could not build the result object"))
}

/// The name the page shows for the bundled model.
const BUNDLED_NAME: &str = "bundled liver U-Net";

/// The names the page shows and sends back, from the one place each is defined, so that its
/// menus, panels, plot axes and CSV columns follow the engine and the loaded model:
/// `{sequences` (the model's channels), `plot_order, classes, composites` (the first is the
/// default), `scopes: [{name, label, needs}], roles, demo_patients, model: {name, card,
/// liver}}`. `liver`: the model reads the six sequences of Chlebus et al. 2019, so the demo
/// patients and their cohort apply. The worker sends it with `ready` and after a model change.
#[wasm_bindgen]
pub fn catalogue() -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct ModelEntry<'a> {
        name: &'a str,
        card: &'a crate::model::ModelCard,
        liver: bool,
        /// How every channel is normalised instead of by the card (`set_normalisation`), or null.
        normalisation: Option<&'a str>,
        /// The card does not say how some channel is normalised: the user must choose.
        unstated: bool,
    }
    #[derive(Serialize)]
    struct Catalogue<'a> {
        sequences: Vec<String>,
        plot_order: Vec<usize>,
        classes: &'a [String],
        /// The class choice explaining every foreground voxel for its own class (a model of more
        /// than two classes), or null.
        all_foreground: Option<&'static str>,
        composites: &'static [&'static str],
        /// Attribution methods beside the composites (the faithfulness panel).
        methods: &'static [&'static str],
        scopes: &'static [crate::spatial::region::Scope],
        roles: Vec<String>,
        demo_patients: usize,
        normalisations: &'static [&'static str],
        model: ModelEntry<'a>,
    }
    with_state(|s| {
        let liver = s.model.is_liver();
        let channels = s.model.channel_names();
        let (plot_order, roles) = if liver {
            (crate::io::volume::PLOT_ORDER.to_vec(), Role::names().into_iter().map(String::from).collect())
        } else {
            let rest = [study::ALL_CHANNELS, "label", "unused"].map(String::from);
            ((0..channels.len()).collect(), channels.iter().cloned().chain(rest).collect())
        };
        let c = Catalogue {
            sequences: channels,
            plot_order,
            classes: &s.model.card.classes,
            all_foreground: (s.model.card.classes.len() > 2).then_some(engine::ALL_FOREGROUND),
            composites: &crate::lrp::composite::NAMES,
            methods: &crate::faithfulness::methods::NAMES,
            scopes: &crate::spatial::region::SCOPES,
            roles,
            demo_patients: crate::demo::phantom::COHORT_SIZE,
            normalisations: &Normalisation::NAMES,
            model: ModelEntry {
                name: &s.model_name,
                card: &s.model.card,
                liver,
                normalisation: s.normalisation_name.as_deref(),
                unstated: s
                    .model
                    .card
                    .channels
                    .iter()
                    .any(|c| matches!(c.normalisation, Normalisation::Unknown { .. })),
            },
        };
        serde_wasm_bindgen::to_value(&c).map_err(js_err)
    })
}

/// Checks a file from its first bytes before the page reads the rest (the header's limits,
/// whether `size` bytes can hold what it describes): `name` is the file's name, `prefix` its
/// start (a `.hdr`'s for a pair), `size` the length of the file that holds the voxels,
/// `img_start` a pair's `.img` first bytes (or null). Returns `{read, gzip}`: how many bytes
/// from the start to read (null = all: DICOM files and `.zip`s are read whole); throws the
/// reason in words when the file is refused.
#[wasm_bindgen]
pub fn check_file(name: String, prefix: &[u8], size: f64, img_start: Option<Vec<u8>>) -> Result<JsValue, JsError> {
    let plan = study::check_prefix(&name, prefix, size as u64, img_start.as_deref()).map_err(js_err)?;
    serde_wasm_bindgen::to_value(&plan).map_err(js_err)
}

/// Reads the files the user gave (`[{name, bytes: Uint8Array, size?}]`; `size` is the file's
/// length where `bytes` is only the part [`check_file`] said to read), assigns them to the study's
/// sequences (`roles`: `{fileName: role}` for the user's corrections, role names as in
/// `Role::name`; null = guess from names), resamples them onto the grid of the channel named
/// `grid` ("" = the finest; any model but the liver one) and, if they make a complete study,
/// runs the forward pass. Returns `{files: [{name, role, info, error}], problem, study, preview}`:
/// `study` is `{dims, channels, spacing, affine, orientation, sources, data: Float32Array,
/// label?: Uint8Array}` or null; `preview` is the first readable file's
/// `{name, dims, channels, data}` for display when there is no study.
#[wasm_bindgen]
pub fn open_files(files: js_sys::Array, roles: JsValue, grid: String) -> Result<JsValue, JsError> {
    let mut inputs: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for f in files.iter() {
        let name = js_sys::Reflect::get(&f, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default();
        let bytes = js_sys::Reflect::get(&f, &"bytes".into()).map_err(|_| js_err("a file without bytes"))?;
        let bytes = Uint8Array::new(&bytes).to_vec();
        // `size`: the file's length when the page read only the part its header needs.
        let size = js_sys::Reflect::get(&f, &"size".into()).ok().and_then(|v| v.as_f64()).map(|v| v as u64);
        let size = size.unwrap_or(bytes.len() as u64).max(bytes.len() as u64);
        inputs.push((name, bytes, size));
    }
    let chosen: Vec<(String, String)> = if roles.is_null() || roles.is_undefined() {
        Vec::new()
    } else {
        let map: std::collections::HashMap<String, String> = serde_wasm_bindgen::from_value(roles).map_err(js_err)?;
        map.into_iter().collect()
    };
    let refs: Vec<study::Input> = inputs.iter().map(|(n, b, size)| study::Input::prefix(n.clone(), b, *size)).collect();
    let mut reports = study::read_files(&refs);
    let (model, classes) = with_state(|s| Ok((s.model.clone(), s.model.card.classes.len())))?;
    // The liver model's study: six sequences by name (or one 4-D file); any other model's: the
    // channels of its card, on any grids (resampled onto the finest).
    let (assembled, roles) = if model.is_liver() {
        let chosen: Vec<(String, Role)> =
            chosen.iter().filter_map(|(name, role)| Role::parse(role).map(|r| (name.clone(), r))).collect();
        let assembled = study::assemble_reports(&mut reports, &chosen).map_err(|e| e.to_string());
        let roles = reports.iter().map(|r| r.role.name().to_string()).collect();
        (assembled, roles)
    } else {
        let names = model.channel_names();
        match study::assign_channels(&reports, &names, &chosen).and_then(|a| a.with_grid(&grid, &names)) {
            Ok(a) => {
                let roles = a.roles(reports.len(), &names);
                let errors = study::blocking_errors(&reports);
                let assembled = if errors.is_empty() {
                    study::assemble_assigned(&reports, &a, &names, classes)
                } else {
                    Err(errors.join("; "))
                };
                (assembled, roles)
            }
            Err(e) => (Err(e), vec!["unused".to_string(); reports.len()]),
        }
    };
    let readable = reports.iter().any(|r| r.volume.is_some());
    let problem = match &assembled {
        Ok(_) => None,
        Err(_) if !readable => Some("none of the files could be read".to_string()),
        Err(e) => Some(e.to_string()),
    };
    let listed = reports
        .iter()
        .zip(roles)
        .map(|(r, role)| Report { name: &r.name, role, info: &r.info, error: &r.error, aside: r.aside })
        .collect();
    let out = serde_wasm_bindgen::to_value(&Opened { files: listed, problem }).map_err(js_err)?;
    match assembled {
        Ok(st) => {
            let vol = &st.volume;
            let prepared = with_state(|s| {
                check_fits(s, vol.dims)?;
                s.model.prepare(vol, &s.device, engine::PrepareOptions::default()).map_err(js_err)
            })?;
            let geometry = Volume { data: Vec::new(), ..vol.clone() };
            let inputs: Vec<(String, crate::io::resample::Grid)> = reports
                .iter()
                .filter_map(|r| r.volume.as_ref().map(|v| (r.name.clone(), crate::io::resample::Grid::of(v))))
                .collect();
            with_state(|s| {
                s.study = Some(prepared);
                s.geometry = Some(geometry);
                s.input_grids = inputs.clone();
                s.label = st.label.clone();
                Ok(())
            })?;
            let info = StudyInfo {
                dims: vol.dims,
                channels: vol.channels,
                spacing: vol.spacing,
                affine: vol.affine,
                orientation: vol.affine.orientation(),
                sources: &st.sources,
                non_finite: &st.non_finite,
                resampled: &st.resampled,
                grids: inputs.iter().map(|(n, _)| n.as_str()).collect(),
            };
            let study = serde_wasm_bindgen::to_value(&info).map_err(js_err)?;
            set(&study, "data", &Float32Array::from(&vol.data[..]))?;
            if let Some(label) = &st.label {
                set(&study, "label", &Uint8Array::from(&label[..]))?;
            }
            set(&out, "study", &study)?;
        }
        Err(_) => {
            // Readable files that do not make a study replace the old one; a drop of nothing
            // readable leaves the loaded study alone (the page keeps showing it).
            if readable {
                with_state(|s| {
                    s.drop_study();
                    Ok(())
                })?;
            }
            set(&out, "study", &JsValue::NULL)?;
            let preview = match reports.iter().find(|r| r.volume.is_some()) {
                Some(r) => {
                    let v = r.volume.as_ref().expect("found above");
                    let p = serde_wasm_bindgen::to_value(&Preview {
                        name: &r.name,
                        dims: v.dims,
                        channels: v.channels,
                        affine: v.affine,
                    })
                    .map_err(js_err)?;
                    set(&p, "data", &Float32Array::from(&v.data[..]))?;
                    p
                }
                None => JsValue::NULL,
            };
            set(&out, "preview", &preview)?;
        }
    }
    Ok(out)
}

fn geometry() -> Result<Volume, JsError> {
    with_state(|s| s.geometry.clone().ok_or_else(|| js_err("no study is loaded")))
}

/// The grid exports go onto: the study's (`onto` = ""), or that of the input file named `onto`.
fn export_grid(onto: &str) -> Result<Option<crate::io::resample::Grid>, JsError> {
    if onto.is_empty() {
        return Ok(None);
    }
    with_state(|s| {
        let found = s.input_grids.iter().find(|(n, _)| n == onto).map(|(_, g)| *g);
        found.map(Some).ok_or_else(|| js_err(format!("{onto} is not one of the study's files")))
    })
}

/// The relevance of an explanation (channels × voxels, file order) as a gzipped 4-D float32
/// NIfTI with the study's affine, or resampled (trilinear, in world coordinates) onto the grid of
/// the input file named `onto` ("" = the study's grid), with that file's affine.
#[wasm_bindgen]
pub fn export_relevance(relevance: &[f32], onto: String) -> Result<Uint8Array, JsError> {
    let g = geometry()?;
    if relevance.len() != g.voxels() * g.channels {
        return Err(js_err(format!("expected {} relevance values, got {}", g.voxels() * g.channels, relevance.len())));
    }
    let mut vol = Volume { data: relevance.to_vec(), ..g };
    if let Some(grid) = export_grid(&onto)? {
        vol = crate::io::resample::resample(&vol, &grid, crate::io::resample::Interpolation::Linear).map_err(js_err)?;
    }
    Ok(Uint8Array::from(&crate::io::nifti::write_nifti(&vol, true)[..]))
}

/// A mask (1 byte per voxel, file order) as a gzipped uint8 NIfTI with the study's affine, or
/// onto the grid of the input file named `onto` (nearest voxel).
#[wasm_bindgen]
pub fn export_segmentation(mask: &[u8], onto: String) -> Result<Uint8Array, JsError> {
    let g = geometry()?;
    if mask.len() != g.voxels() {
        return Err(js_err(format!("expected {} mask values, got {}", g.voxels(), mask.len())));
    }
    let Some(grid) = export_grid(&onto)? else {
        return Ok(Uint8Array::from(&crate::io::nifti::write_label(mask, &g, true)[..]));
    };
    let vol = Volume { channels: 1, data: mask.iter().map(|&v| v as f32).collect(), ..g };
    let moved =
        crate::io::resample::resample(&vol, &grid, crate::io::resample::Interpolation::Nearest).map_err(js_err)?;
    let labels: Vec<u8> = moved.data.iter().map(|&v| v as u8).collect();
    Ok(Uint8Array::from(&crate::io::nifti::write_label(&labels, &moved, true)[..]))
}

fn current() -> Result<Prepared, JsError> {
    with_state(|s| s.study.clone().ok_or_else(|| js_err("no study is loaded")))
}

/// The predicted tumour mask (1 = tumour), one byte per voxel in file order.
#[wasm_bindgen]
pub async fn segment() -> Result<Uint8Array, JsError> {
    let study = current()?;
    let mask = engine::segmentation_with_progress(&study, |done, total| progress("segment", done, total)).await;
    release();
    Ok(Uint8Array::from(&mask.map_err(js_err)?[..]))
}

/// The composite the page asked for ("" = the default).
fn chosen_composite(name: &str, study: &Prepared) -> Result<crate::lrp::Composite, JsError> {
    engine::composite(if name.is_empty() { engine::DEFAULT_COMPOSITE } else { name }, study).map_err(js_err)
}

/// The relevance map of `class` at voxel (x, y, z) under `composite` (Zennit's names, or ""
/// for the default): `{relevance: Float32Array (6 × voxels), logit, relevance_sum, shares,
/// signed_shares, voxel, class}`.
#[wasm_bindgen]
pub async fn explain(x: usize, y: usize, z: usize, class: usize, composite: String) -> Result<JsValue, JsError> {
    let study = current()?;
    let composite = chosen_composite(&composite, &study)?;
    let e = engine::explain(&study, [x, y, z], class, &composite).await;
    release();
    let e = e.map_err(js_err)?;
    let out = serde_wasm_bindgen::to_value(&e).map_err(js_err)?;
    js_sys::Reflect::set(&out, &"relevance".into(), &Float32Array::from(&e.relevance[..]))
        .map_err(|_| js_err("could not build the result object"))?;
    Ok(out)
}

/// The exact two-pass region map of `class` for a region of the voxels predicted as `class`
/// (any foreground for class 0: [`Selection::mask_of_class`]; `class` undefined: every
/// foreground voxel for its own class, [`engine::ALL_FOREGROUND`]): `scope` "component" (the
/// connected component holding voxel (x, y, z)), "all", or against the study's label "tp",
/// "fn", "fp"; or "drawn": `drawn` is the region itself (0/1 per voxel, file order, drawn by
/// the user in the viewer). Returns `{relevance: Float32Array, region: Uint8Array (the
/// region's mask), voxels, left_out, relevance_sum, shares, signed_shares, class}`.
#[wasm_bindgen]
pub async fn explain_region(
    x: usize,
    y: usize,
    z: usize,
    class: Option<usize>,
    composite: String,
    scope: String,
    drawn: Option<Vec<u8>>,
) -> Result<JsValue, JsError> {
    let study = current()?;
    let composite = chosen_composite(&composite, &study)?;
    let mask = engine::segmentation(&study).await.map_err(js_err)?;
    let selection = match scope.as_str() {
        "component" => Selection::Component([x, y, z]),
        "drawn" => Selection::Mask(drawn.ok_or_else(|| js_err("draw a region first"))?),
        other => Selection::parse(other).map_err(js_err)?,
    };
    let label = with_state(|s| Ok(s.label.clone()))?;
    let area = selection.classes_of(&mask, label.as_deref(), class, study.dims).map_err(|e| match selection {
        Selection::Component(_) => js_err(format!("{e}: click inside the coloured region, or explain single voxels")),
        _ => js_err(e),
    })?;
    if !area.iter().any(|v| *v != 0) {
        return Err(js_err(selection.empty_message()));
    }
    let e = region_map(&study, &area, class, &composite).await;
    release();
    let e = e.map_err(js_err)?;
    let out = serde_wasm_bindgen::to_value(&e).map_err(js_err)?;
    set(&out, "relevance", &Float32Array::from(&e.relevance[..]))?;
    set(&out, "region", &Uint8Array::from(&area[..]))?;
    Ok(out)
}

/// How faithful the maps of a region are (README "How faithful is a map?"): `region` is the
/// region as [`explain_region`] returned it (or one voxel), `class` as there, `methods` LRP
/// composites and the other methods by name (the catalogue's `methods`), `steps` the curves'
/// steps. Region perturbation with the background baseline, per-channel values, a budget of
/// twice the region; each forward pass reported as progress stage "faithfulness". Returns
/// `{voxels, unperturbed: {logit, dice}, methods: [{method, units, morf: [{logit, dice}], lerf,
/// aopc_morf, aopc_lerf, abpc, dice_aopc_morf, dice_aopc_lerf, shares}], …}`.
#[wasm_bindgen]
pub async fn faithfulness(
    region: Vec<u8>,
    class: Option<usize>,
    methods: Vec<String>,
    steps: usize,
) -> Result<JsValue, JsError> {
    use crate::faithfulness::{evaluate, EvaluationOptions, Method, PerturbationOptions, Probe};
    let study = current()?;
    let methods: Vec<Method> = methods
        .iter()
        .map(|n| Method::parse(n, |c| engine::composite(c, &study)))
        .collect::<Result<_, _>>()
        .map_err(js_err)?;
    let options = EvaluationOptions {
        perturbation: PerturbationOptions { steps: steps.max(1), ..Default::default() },
        ..Default::default()
    };
    let e = async {
        let probe = Probe::new(&study, &region, class).await?;
        evaluate(&probe, &methods, &options, &mut |done, total| progress("faithfulness", done, total)).await
    }
    .await;
    release();
    // Objects, not `Map`s, for the flattened curves of each method.
    let json = serde_wasm_bindgen::Serializer::json_compatible();
    e.map_err(js_err)?.serialize(&json).map_err(js_err)
}

/// One region's map, reporting each LRP pass to the page.
async fn region_map(
    study: &Prepared,
    area: &[u8],
    class: Option<usize>,
    composite: &crate::lrp::Composite,
) -> Result<engine::RegionExplanation, String> {
    let mut maps =
        engine::explain_regions(study, &[area], class, composite, |done, total| progress("region", done, total))
            .await?;
    Ok(maps.remove(0))
}

/// Refuses a demo patient number outside the cohort.
fn demo_patient(i: usize) -> Result<(), JsError> {
    if (1..=crate::demo::phantom::COHORT_SIZE).contains(&i) {
        Ok(())
    } else {
        Err(js_err(format!("the demo cohort has patients 1–{}", crate::demo::phantom::COHORT_SIZE)))
    }
}

/// Patient `i` (1–20) of the demo cohort, generated here from its fixed seed, as the files a
/// user would drop: `[{name, bytes: Uint8Array}]` for the six sequences and the label
/// (`.nii.gz` when `gzip`, else `.nii`, which is faster to make).
#[wasm_bindgen]
pub fn cohort_files(i: usize, gzip: bool) -> Result<js_sys::Array, JsError> {
    demo_patient(i)?;
    let out = js_sys::Array::new();
    for (name, bytes) in crate::demo::phantom::cohort_patient(i).nifti_files(gzip) {
        let f = js_sys::Object::new();
        set(&f, "name", &format!("patient{i:02}_{name}").into())?;
        set(&f, "bytes", &Uint8Array::from(&bytes[..]))?;
        out.push(&f);
    }
    Ok(out)
}

/// One line of the cohort figure of Chlebus et al. 2019, computed without touching the loaded study: demo
/// patient `i` generated, read back from its NIfTI files (the path a dropped study takes),
/// segmented, and the exact region map of all its predicted tumour (class tumour) under
/// `composite`. Returns what [`explain_region`] does without the maps
/// (`{voxels, left_out, shares, signed_shares, conservation, …}`) plus `patient` and
/// `tumour_voxels`; with no predicted tumour only those two (`tumour_voxels: 0`). The page runs
/// it on a pool of workers, one patient per CPU core.
#[wasm_bindgen]
pub async fn explain_demo_patient(i: usize, composite: String) -> Result<JsValue, JsError> {
    demo_patient(i)?;
    let files = crate::demo::phantom::cohort_patient(i).nifti_files(false);
    let refs: Vec<study::Input> =
        files.iter().map(|(n, b)| study::Input::bytes(format!("patient{i:02}_{n}"), b)).collect();
    let mut reports = study::read_files(&refs);
    let st = study::assemble_reports(&mut reports, &[]).map_err(js_err)?;
    let prepared = with_state(|s| {
        if !s.model.is_liver() {
            return Err(js_err(format!(
                "the demo patients are liver studies of six sequences; the model in use ({}) reads {}",
                s.model_name,
                s.model.channel_names().join(", ")
            )));
        }
        check_fits(s, st.volume.dims)?;
        s.model.prepare(&st.volume, &s.device, engine::PrepareOptions::default()).map_err(js_err)
    })?;
    let mask = engine::segmentation(&prepared).await.map_err(js_err)?;
    let tumour = mask.iter().filter(|v| **v != 0).count();
    let out = if tumour == 0 {
        js_sys::Object::new().into()
    } else {
        let composite = chosen_composite(&composite, &prepared)?;
        let area = Selection::AllPredicted.mask(&mask, None, prepared.dims).map_err(js_err)?;
        let e = region_map(&prepared, &area, Some(1), &composite).await;
        release();
        serde_wasm_bindgen::to_value(&e.map_err(js_err)?).map_err(js_err)?
    };
    set(&out, "patient", &(i as f64).into())?;
    set(&out, "tumour_voxels", &(tumour as f64).into())?;
    Ok(out)
}

/// Demo patient `i` imaged on an `nx × ny × nz` grid (same voxel size, centred on the liver)
/// as one uncompressed 4-D NIfTI, `{name, bytes}`: the bench page's studies of any size.
#[wasm_bindgen]
pub fn sample_file(i: usize, nx: usize, ny: usize, nz: usize) -> Result<JsValue, JsError> {
    demo_patient(i)?;
    if [nx, ny, nz].iter().any(|d| !(8..=512).contains(d)) {
        return Err(js_err(format!("{nx}×{ny}×{nz}: each side must be 8 to 512 voxels")));
    }
    let p = crate::demo::phantom::study(crate::demo::phantom::cohort_seed(i), [nx, ny, nz]);
    let f = js_sys::Object::new();
    set(&f, "name", &format!("patient{i:02}_{nx}x{ny}x{nz}.nii").into())?;
    set(&f, "bytes", &Uint8Array::from(&crate::io::nifti::write_nifti(&p.volume, false)[..]))?;
    Ok(f.into())
}

/// What the engine holds: `{wasm_bytes` (the wasm memory, which only grows: its peak),
/// `device_in_use`, `device_reserved` (the GPU allocator's bytes; null on the CPU)`}`.
#[wasm_bindgen]
pub fn memory_report() -> Result<JsValue, JsError> {
    let wasm =
        wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>().map_err(|_| js_err("no wasm memory"))?;
    // An ArrayBuffer, or a SharedArrayBuffer in the threaded engine: both have `byteLength`.
    let wasm_bytes = js_sys::Reflect::get(&wasm.buffer(), &"byteLength".into())
        .ok()
        .and_then(|n| n.as_f64())
        .ok_or_else(|| js_err("no wasm buffer"))?;
    let usage = with_state(|s| Ok(s.device.memory_pool_usage()))?;
    let out = js_sys::Object::new();
    set(&out, "wasm_bytes", &wasm_bytes.into())?;
    set(&out, "device_in_use", &usage.as_ref().map(|u| JsValue::from(u.bytes_in_use as f64)).unwrap_or(JsValue::NULL))?;
    set(
        &out,
        "device_reserved",
        &usage.as_ref().map(|u| JsValue::from(u.bytes_reserved as f64)).unwrap_or(JsValue::NULL),
    )?;
    Ok(out.into())
}

/// For the benchmark page (bench.html): the best of `reps` runs, in seconds, of one 3×3×3
/// convolution of `c` → `o` channels on a `d`×`h`×`w` volume (zero padding 1) by the engine's
/// direct conv loop (ops/conv.rs: the build's widest) on fixed pseudo-random data, on the CPU
/// device, timed inside the engine (the data's making is not counted).
#[wasm_bindgen]
pub fn bench_conv(c: usize, o: usize, d: usize, h: usize, w: usize, reps: usize) -> Result<f64, JsError> {
    use burn::tensor::{Tensor, TensorData};
    if [c, o, d, h, w, reps].iter().any(|&n| !(1..=512).contains(&n)) {
        return Err(js_err("bench_conv: every size and the repeats must be 1 to 512"));
    }
    let device = crate::backend::cpu_device("cpu").map_err(js_err)?;
    let mut rng = crate::rng::SplitMix::new(1);
    let mut random = |dims: [usize; 5]| {
        let n = dims.iter().product();
        Tensor::<5>::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), dims), &device)
    };
    let (x, wt) = (random([1, c, d, h, w]), random([o, c, 3, 3, 3]));
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = js_sys::Date::now();
        let y = crate::ops::conv::direct(x.clone(), wt.clone(), None, [(1, 1); 3]);
        // The result read back, as every pass does, so that nothing is left pending.
        let sum: f32 = y.sum().into_scalar();
        best = best.min((js_sys::Date::now() - t) / 1e3);
        if !sum.is_finite() {
            return Err(js_err("bench_conv: the convolution gave a non-finite sum"));
        }
    }
    Ok(best)
}

/// Hands the GPU allocator's free pages back after a request, so that one large request does
/// not keep its memory for the rest of the session.
fn release() {
    let _ = with_state(|s| {
        s.device.memory_cleanup();
        Ok(())
    });
}

/// Goes back to the bundled liver model (the study must be opened again, as after
/// [`load_model`]). Returns what [`catalogue`] does.
#[wasm_bindgen]
pub fn use_bundled_model() -> Result<JsValue, JsError> {
    let model = with_state(|s| Model::bundled(&s.device).map_err(js_err))?;
    replace_model(model, BUNDLED_NAME.to_string())
}

/// Whether a dropped `.zip` holds a model (else it is taken as a study: DICOM series, NIfTI files).
#[wasm_bindgen]
pub fn zip_holds_model(bytes: &[u8]) -> bool {
    crate::model::files::zip_holds_model(bytes)
}

/// Replaces the model by the user's, from the files dropped for it (`[{name, bytes}]`): an
/// nnU-Net or MONAI model folder (its files with their paths in it, or a `.zip` of it), an
/// `.onnx` file (with a MONAI bundle's `metadata.json`), or SegLRP U-Net `.safetensors` with
/// its configuration in the metadata or as a `.json` (any channel and class count). A model
/// that cannot be read is refused in words and the old one stays. The loaded study must be
/// opened again (its forward pass belongs to the old model). Returns what [`catalogue`] does.
#[wasm_bindgen]
pub fn load_model(files: js_sys::Array) -> Result<JsValue, JsError> {
    let mut given = Vec::new();
    for f in files.iter() {
        let name = js_sys::Reflect::get(&f, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default();
        let bytes = js_sys::Reflect::get(&f, &"bytes".into()).map_err(|_| js_err("a file without bytes"))?;
        given.push((name, Uint8Array::new(&bytes).to_vec()));
    }
    // The name the page shows: the archive, the dropped folder, or the file that holds the weights.
    let lower = |n: &str| n.to_ascii_lowercase();
    let names = || given.iter().map(|(n, _)| n.as_str());
    let name = names()
        .find(|n| lower(n).ends_with(".zip"))
        .or_else(|| names().find_map(|n| n.split_once('/').map(|(top, _)| top)))
        .or_else(|| names().find(|n| !lower(n).ends_with(".json")))
        .unwrap_or("your model")
        .to_string();
    let loaded = with_state(|s| crate::model::open::from_files(given, &s.device).map_err(js_err))?;
    replace_model(Model { graph: loaded.graph, card: loaded.card, normalisation: None }, name)
}

/// Every channel normalised by the scheme `name` (one of the catalogue's `normalisations`)
/// instead of as the model's card says; "" = as the card says. The loaded study must be opened
/// again. Returns what [`catalogue`] does.
#[wasm_bindgen]
pub fn set_normalisation(name: String) -> Result<JsValue, JsError> {
    let scheme = match name.as_str() {
        "" => None,
        n => Some(Normalisation::parse(n).ok_or_else(|| {
            js_err(format!("unknown normalisation \"{n}\": one of {}", Normalisation::NAMES.join(", ")))
        })?),
    };
    with_state(|s| {
        s.model.normalisation = scheme;
        s.normalisation_name = (!name.is_empty()).then_some(name);
        s.drop_study();
        Ok(())
    })?;
    catalogue()
}

fn replace_model(model: Model, name: String) -> Result<JsValue, JsError> {
    with_state(|s| {
        s.model = model;
        s.model_name = name;
        s.normalisation_name = None;
        s.drop_study();
        Ok(())
    })?;
    catalogue()
}
