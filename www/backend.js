// Where the network runs when the page is left to choose (?backend=auto, the default): WebGPU
// on a hardware GPU, else the CPU engine. A software WebGPU adapter (SwiftShader, llvmpipe,
// lavapipe) runs the engine 25–50× slower than the CPU engine (measured in headless Chromium),
// so it is passed over; ?backend=webgpu still forces it.
import './relaxed-simd.js';

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

/** Most threads the CPU engine starts: rayon's workers each hold a stack; beyond 16 the
 * engine's convolutions (one job per output slice and channel block) gain little. */
const MAX_THREADS = 16;

/**
 * How many threads the CPU engine runs on, and why. Threads need shared memory, which the
 * browser gives only to a cross-origin isolated page (served with COOP `same-origin` and COEP
 * `require-corp`: README, "Serve it yourself"); without it the single-threaded engine runs.
 * A WebGPU choice (`auto` on a hardware GPU, or `webgpu`) keeps the single-threaded module,
 * which alone holds WebGPU. `asked`: the page's `?threads=N`.
 */
export function threadPlan(choice, { isolated, cores, asked = null }) {
  if (choice === 'auto' || choice === 'webgpu') return { threads: 1, why: 'the GPU engine' };
  const n = Math.floor(Number(asked));
  if (asked != null && n >= 1) {
    if (n === 1) return { threads: 1, why: '1 thread, as asked (threads=1)' };
    if (isolated) return { threads: Math.min(n, MAX_THREADS), why: `${Math.min(n, MAX_THREADS)} threads, as asked` };
  }
  if (!isolated)
    return {
      threads: 1,
      why: '1 thread: the page is not cross-origin isolated (its server sends no COOP/COEP headers), so the browser gives no shared memory',
    };
  const all = Math.max(1, Math.min(cores || 1, MAX_THREADS));
  return { threads: all, why: `${all} thread${all > 1 ? 's' : ''} (every core the browser reports)` };
}

/**
 * The engine module the worker loads for `threads` (threadPlan), and why: the single-threaded
 * module (WebGPU and the CPU), or the threaded CPU engine, built twice: with relaxed-SIMD
 * multiply-adds in its conv loop, fused where the CPU has FMA, for browsers that validate
 * relaxed SIMD; with plain wasm SIMD for the others. `asked`: the page's `?simd=plain`.
 */
export function engineModule(threads, { relaxed = globalThis.seglrpRelaxedSimd(), asked = null } = {}) {
  if (threads <= 1) return { module: './pkg/seglrp.js', why: null };
  if (asked === 'plain') return { module: './pkg-threads/seglrp.js', why: 'plain wasm SIMD, as asked (simd=plain)' };
  if (relaxed) return { module: './pkg-threads-relaxed/seglrp.js', why: 'relaxed-SIMD multiply-adds' };
  return { module: './pkg-threads/seglrp.js', why: 'plain wasm SIMD (this browser has no relaxed SIMD)' };
}
