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

use crate::engine::{self, Prepared};
use crate::unet::UNet;

struct State {
    device: Device,
    net: UNet,
    study: Option<Prepared>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
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
    let net = engine::skeleton_model(&device);
    STATE.with(|s| *s.borrow_mut() = Some(State { device, net, study: None }));
    Ok(backend)
}

fn cpu(name: &str) -> Result<(String, Device), JsError> {
    let device = crate::backend::cpu_device(name).map_err(js_err)?;
    let label = if name == "cpu" { crate::backend::default_cpu_backend() } else { name };
    Ok((format!("cpu ({label})"), device))
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
struct StudyInfo {
    dims: [usize; 3],
    channels: usize,
    spacing: [f32; 3],
}

/// Reads a NIfTI file (bytes of a `.nii` or `.nii.gz`), checks it is a 6-sequence study and
/// runs the forward pass. Returns `{dims, channels, spacing, data}`, `data` being the
/// intensities (Float32Array, channel after channel, file order) for display.
#[wasm_bindgen]
pub fn load_nifti(bytes: &[u8]) -> Result<JsValue, JsError> {
    let vol = crate::nifti::read_nifti(bytes).map_err(js_err)?;
    let info = StudyInfo { dims: vol.dims, channels: vol.channels, spacing: vol.spacing };
    // A refused file leaves the previous study loaded: the page keeps showing it.
    with_state(|s| {
        s.study = Some(engine::prepare(&s.net, &vol, &s.device).map_err(js_err)?);
        Ok(())
    })?;
    let out = serde_wasm_bindgen::to_value(&info).map_err(js_err)?;
    js_sys::Reflect::set(&out, &"data".into(), &Float32Array::from(&vol.data[..]))
        .map_err(|_| js_err("could not build the result object"))?;
    Ok(out)
}

fn current() -> Result<(UNet, Prepared), JsError> {
    with_state(|s| {
        let study = s.study.clone().ok_or_else(|| js_err("no study is loaded"))?;
        Ok((s.net.clone(), study))
    })
}

/// The predicted tumour mask (1 = tumour), one byte per voxel in file order.
#[wasm_bindgen]
pub async fn segment() -> Result<Uint8Array, JsError> {
    let (_, study) = current()?;
    let mask = engine::segmentation(&study).await.map_err(js_err)?;
    Ok(Uint8Array::from(&mask[..]))
}

/// LRP-ε map of `class` at voxel (x, y, z): `{relevance: Float32Array (6 × voxels),
/// logit, relevance_sum, shares, voxel, class}`.
#[wasm_bindgen]
pub async fn explain(x: usize, y: usize, z: usize, class: usize) -> Result<JsValue, JsError> {
    let (net, study) = current()?;
    let e = engine::explain(&net, &study, [x, y, z], class).await.map_err(js_err)?;
    let out = serde_wasm_bindgen::to_value(&e).map_err(js_err)?;
    js_sys::Reflect::set(&out, &"relevance".into(), &Float32Array::from(&e.relevance[..]))
        .map_err(|_| js_err("could not build the result object"))?;
    Ok(out)
}

/// The bundled sample patient as `.nii.gz` bytes.
#[wasm_bindgen]
pub fn sample_nifti() -> Uint8Array {
    Uint8Array::from(&crate::phantom::sample_nifti()[..])
}
