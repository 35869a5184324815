//! Choosing the device the engine runs on. The engine itself is backend-free (`Tensor<D>` +
//! a runtime `Device`); only this module knows which burn backends were compiled in.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::prelude::Device;

/// CPU backends this build can use, by name ("ndarray", "flex").
pub fn cpu_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cpu-ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "cpu-flex") {
        v.push("flex");
    }
    v
}

/// The default CPU backend: flex where it is built (measured several times faster than
/// ndarray on this engine's 3D convolutions; see the README), else ndarray.
pub fn default_cpu_backend() -> &'static str {
    cpu_backends().into_iter().next_back().unwrap_or("none")
}

/// The CPU device by backend name; `"cpu"` means [`default_cpu_backend`].
#[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; measured, not assumed.
pub fn cpu_device(name: &str) -> Result<Device, String> {
    let name = if name == "cpu" { default_cpu_backend() } else { name };
    match name {
        #[cfg(feature = "cpu-ndarray")]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "cpu-flex")]
        "flex" => Ok(Device::flex()),
        other => Err(format!("CPU backend '{other}' is not in this build (available: {:?})", cpu_backends())),
    }
}

#[cfg(feature = "webgpu")]
thread_local! {
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

/// Opens the WebGPU device (browser) through burn-wgpu, once: burn registers one runtime per
/// device and refuses a second registration, so later calls get the same device. Fails where
/// the browser has no WebGPU adapter; callers fall back to [`cpu_device`].
#[cfg(feature = "webgpu")]
pub async fn webgpu_device() -> Result<Device, String> {
    use burn::tensor::wgpu::WgpuBackend;
    if let Some(device) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .graphics_api(WgpuBackend::WebGpu)
        .init_async()
        .await
        .map_err(|e| format!("WebGPU is not available: {e}"))?;
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// The native GPU through burn-wgpu (Vulkan, Metal or DirectX 12, whichever the machine has).
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub fn gpu_device() -> Result<Device, String> {
    Device::wgpu_options().init().map_err(|e| format!("no usable GPU: {e}"))
}

/// Without the `gpu` feature: says how to get one.
#[cfg(not(all(feature = "gpu", not(target_arch = "wasm32"))))]
pub fn gpu_device() -> Result<Device, String> {
    Err("this seglrp was built without GPU support; rebuild with `cargo build --release --features gpu` (README \
        \"Command line\")"
        .into())
}

/// Reads back to the host so far ([`read`]): on a GPU each one waits for the device to finish,
/// so a pass should make as few as it can (`cargo bench --bench gpu` counts them per pass).
static READS: AtomicUsize = AtomicUsize::new(0);

/// How many tensors [`read`] has brought back to the host since the process started.
pub fn reads() -> usize {
    READS.load(Ordering::Relaxed)
}

/// A tensor read back to the host from whichever device holds it, as f32 values (file order).
pub async fn read(t: burn::prelude::Tensor<5>) -> Result<Vec<f32>, String> {
    READS.fetch_add(1, Ordering::Relaxed);
    let data = t.into_data_async().await.map_err(|e| format!("reading back from the device failed: {e:?}"))?;
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}
