// Where the network runs when the page is left to choose (?backend=auto, the default): WebGPU
// on a hardware GPU, else the CPU engine. A software WebGPU adapter (SwiftShader, llvmpipe,
// lavapipe) runs the engine 25–50× slower than the CPU engine (measured in headless Chromium),
// so it is passed over; ?backend=webgpu still forces it.

/**
 * What WebGPU offers here: none (no adapter: an adapter must exist before burn is asked for a
 * device, a failure inside wasm could trap), a software renderer (SwiftShader, llvmpipe,
 * lavapipe: 25–50× slower than the CPU engine, measured), or hardware.
 */
export async function webgpuKind(gpu = globalThis.navigator?.gpu) {
  try {
    const adapter = await gpu?.requestAdapter();
    if (!adapter) return { kind: 'none' };
    const info = adapter.info ?? {};
    const named = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    const software =
      info.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(named);
    return { kind: software ? 'software' : 'hardware', named };
  } catch {
    return { kind: 'none' };
  }
}

/** The backend `auto` runs on, and why: the GPU where it is hardware, else the CPU engine. */
export function chooseBackend(prefer, { kind, named }) {
  if (prefer !== 'auto') return { choice: prefer, why: `as asked (backend=${prefer})` };
  if (kind === 'hardware') return { choice: 'auto', why: `WebGPU on ${named || 'this GPU'}` };
  if (kind === 'software')
    return {
      choice: 'cpu',
      why: `WebGPU here is a software renderer (${named || 'fallback adapter'}), slower than the CPU engine; ?backend=webgpu forces it`,
    };
  return { choice: 'cpu', why: 'no WebGPU in this browser' };
}
