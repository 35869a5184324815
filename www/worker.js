// The compute side: the wasm engine runs here so that the page never freezes.
// Protocol: {id, op, ...args} in, {id, ok, result | error, kind} out; plus one
// {op: 'ready', backend, why, threads, limits, catalogue} (or {op: 'failed', error}) after start-up.
import { webgpuKind, chooseBackend, threadPlan, engineModule } from './backend.js';

const params = new URL(self.location.href).searchParams;
const prefer = params.get('backend') || 'auto';
// The engine's module: the single-threaded one (WebGPU and the CPU) or a threaded CPU one.
let engine;

// The GPUDevice burn-wgpu opens, caught on its way: its limits are reported (the engine refuses
// studies above them), its loss is reported at once (the page moves to the CPU and redoes the
// request), and the test suite can destroy it (op loseDevice) to check exactly that.
let gpuDevice = null;
if (self.GPUAdapter?.prototype.requestDevice) {
  const requestDevice = self.GPUAdapter.prototype.requestDevice;
  self.GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevice = device;
    device.lost.then((info) => self.postMessage({ op: 'lost', reason: info.reason, message: info.message }));
    return device;
  };
}

async function start() {
  try {
    const { choice, why } = chooseBackend(prefer, await webgpuKind());
    const plan = threadPlan(choice, {
      isolated: self.crossOriginIsolated,
      cores: navigator.hardwareConcurrency,
      asked: params.get('threads'),
    });
    const chosen = engineModule(plan.threads, { asked: params.get('simd') });
    engine = await import(chosen.module);
    await engine.default();
    // rayon's pool on Web Workers sharing the engine's memory (wasm-bindgen-rayon).
    if (plan.threads > 1) await engine.initThreadPool(plan.threads);
    const engineName = await engine.init(choice);
    const backend = engineName.startsWith('cpu')
      ? engineName.replace(/\)$/, `, ${plan.threads} thread${plan.threads > 1 ? 's' : ''})`)
      : engineName;
    const limits =
      backend === 'webgpu' && gpuDevice
        ? {
            maxBufferSize: gpuDevice.limits.maxBufferSize,
            maxStorageBufferBindingSize: gpuDevice.limits.maxStorageBufferBindingSize,
          }
        : null;
    if (limits) engine.set_buffer_limit(Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize));
    const whyAll = backend.startsWith('cpu') ? [why, plan.why, chosen.why].filter(Boolean).join('; ') : why;
    self.postMessage({
      op: 'ready',
      backend,
      why: whyAll,
      threads: plan.threads,
      limits,
      catalogue: engine.catalogue(),
    });
  } catch (e) {
    self.postMessage({ op: 'failed', error: String(e?.message ?? e) });
  }
}

const ops = {
  // A file's first bytes, checked before the page reads the rest (web.rs check_file).
  check: ({ name, prefix, size, imgStart }) =>
    engine.check_file(name, new Uint8Array(prefix), size, imgStart ? new Uint8Array(imgStart) : undefined),
  // Whether a dropped .zip is a model (else a study).
  zipKind: ({ bytes }) => (engine.zip_holds_model(new Uint8Array(bytes)) ? 'model' : 'study'),
  open: ({ files, roles, grid }) =>
    engine.open_files(
      files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes), size: f.size })),
      roles ?? null,
      grid ?? '',
    ),
  segment: async () => {
    const mask = await engine.segment();
    return { mask };
  },
  explain: ({ x, y, z, cls, composite }) => engine.explain(x, y, z, cls, composite ?? ''),
  explainRegion: ({ x, y, z, cls, composite, scope, drawn }) =>
    engine.explain_region(x, y, z, cls ?? undefined, composite ?? '', scope, drawn ?? undefined),
  // How faithful the maps of a region are (web.rs faithfulness): the region as explained.
  faithfulness: ({ region, cls, methods, steps }) =>
    engine.faithfulness(new Uint8Array(region), cls ?? undefined, methods, steps),
  cohort: ({ i }) => engine.cohort_files(i, false),
  // One line of the cohort figure, leaving the loaded study alone (app.js runs these on a pool).
  demoPatient: ({ i, composite }) => engine.explain_demo_patient(i, composite ?? ''),
  sample: ({ i, dims }) => engine.sample_file(i, dims[0], dims[1], dims[2]),
  memory: () => engine.memory_report(),
  // For bench.html: the best of `reps` runs of the engine's conv loop on one shape, in seconds.
  convSpeed: ({ c, o, dims, reps }) => engine.bench_conv(c, o, dims[0], dims[1], dims[2], reps),
  // Returns the new catalogue: the model's channels, classes and card.
  loadModel: ({ files }) =>
    files
      ? engine.load_model(files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })))
      : engine.use_bundled_model(),
  catalogue: () => engine.catalogue(),
  normalisation: ({ name }) => engine.set_normalisation(name ?? ''),
  // Exports on the study's grid (onto '') or resampled onto an input file's grid.
  exportRelevance: ({ relevance, onto }) => ({ bytes: engine.export_relevance(relevance, onto ?? '') }),
  exportSegmentation: ({ mask, onto }) => ({ bytes: engine.export_segmentation(mask, onto ?? '') }),
  // For the tests: the GPU goes away as it would on a driver reset.
  loseDevice: () => {
    gpuDevice?.destroy();
    return { destroyed: Boolean(gpuDevice) };
  },
  // For the tests: a smaller buffer limit, to see a too-big study refused.
  bufferLimit: ({ bytes }) => engine.set_buffer_limit(bytes),
};

self.onmessage = async ({ data }) => {
  const { id, op } = data;
  try {
    const result = await ops[op](data);
    const transfer = [
      result?.mask,
      result?.relevance,
      result?.region,
      result?.bytes,
      result?.study?.data,
      result?.study?.label,
      result?.preview?.data,
    ]
      .map((a) => a?.buffer)
      .filter(Boolean);
    self.postMessage({ id, ok: true, result }, transfer);
  } catch (e) {
    // A trap (RuntimeError) or a lost GPU leaves the engine unusable: the page restarts the
    // worker (on the CPU if WebGPU was the cause). Errors about the input are not fatal.
    const fatal = e instanceof WebAssembly.RuntimeError || /device|gpu|webgpu|lost/i.test(String(e?.message));
    self.postMessage({
      id,
      ok: false,
      error: String(e?.message ?? e),
      kind:
        (op === 'open' || op === 'check' || op === 'loadModel' || op === 'normalisation' || op.startsWith('export')) &&
        !fatal
          ? 'input'
          : 'fatal',
    });
  }
};

start();
