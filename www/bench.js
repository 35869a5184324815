// The browser benchmark (bench.html): each backend in its own worker, as the page runs it.
// Results go to the table and to `window.__bench` (scripts/bench-browser.mjs prints them).
const params = new URLSearchParams(location.search);
const backends = (params.get('backends') || 'webgpu,cpu@1,cpu/plain,cpu').split(',');
const sizes = (params.get('sizes') || '64x64x32;128x128x64;256x256x128')
  .split(';')
  .map((s) => s.split('x').map(Number));
const clicks = Number(params.get('clicks') || 20);
const regions = params.get('region') !== '0';
const $ = (id) => document.getElementById(id);
const MB = 2 ** 20;

/**
 * `backend` is "webgpu", "cpu" (every core the page may use) or "cpu@N" (N threads), optionally
 * with "/plain" (the threaded engine without relaxed SIMD, as `?simd=plain`).
 */
function worker(backend) {
  const [spec, simd] = backend.split('/');
  const [name, threads] = spec.split('@');
  const url = new URL('./worker.js', import.meta.url);
  url.searchParams.set('backend', name);
  if (threads) url.searchParams.set('threads', threads);
  if (simd) url.searchParams.set('simd', simd);
  const w = new Worker(url, { type: 'module' });
  const pending = new Map();
  let next = 1;
  const ready = new Promise((resolve, reject) => {
    w.onmessage = ({ data }) => {
      if (data.op === 'ready') return resolve(data.backend);
      if (data.op === 'failed') return reject(new Error(data.error));
      const p = pending.get(data.id);
      if (!p) return;
      pending.delete(data.id);
      if (data.ok) p.resolve(data.result);
      else p.reject(new Error(data.error));
    };
  });
  const call = (op, args = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      w.postMessage({ id, op, ...args });
    });
  return { ready, call, close: () => w.terminate() };
}

async function timed(fn) {
  const t = performance.now();
  const out = await fn();
  return [out, (performance.now() - t) / 1000];
}

/** The predicted tumour voxel nearest the centre, `[x, y, z]`, or null. */
function nearestTumour(mask, [nx, ny, nz]) {
  let best = null;
  let bestD = Infinity;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % nx;
    const y = Math.floor(i / nx) % ny;
    const z = Math.floor(i / (nx * ny));
    const d = (x - nx / 2) ** 2 + (y - ny / 2) ** 2 + (z - nz / 2) ** 2;
    if (d < bestD) {
      bestD = d;
      best = [x, y, z];
    }
  }
  return best;
}

/** The bundled U-Net's stride-1 conv shapes on a 128×96×40 study (as `cargo bench --bench conv`). */
const CONV_SHAPES = [
  { name: 'level 0', c: 8, o: 8, dims: [40, 96, 128] },
  { name: 'level 1', c: 16, o: 16, dims: [20, 48, 64] },
  { name: 'level 2', c: 32, o: 32, dims: [10, 24, 32] },
];

/** The conv loop's speed on the CPU engine of worker `w` (named `backend`), a row per shape. */
async function convSpeed(w, backend) {
  for (const { name, c, o, dims } of CONV_SHAPES) {
    const seconds = await w.call('convSpeed', { c, o, dims, reps: 3 });
    const gfma = (c * o * 27 * dims.reduce((a, b) => a * b)) / 1e9;
    const row = {
      backend,
      shape: `${name}, ${dims.join('×')}`,
      channels: `${c} → ${o}`,
      seconds,
      gfmas: gfma / seconds,
    };
    window.__bench.conv.push(row);
    const tr = document.createElement('tr');
    for (const v of [backend, row.shape, row.channels, `${seconds.toFixed(3)} s`, row.gfmas.toFixed(1)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    $('conv').querySelector('tbody').append(tr);
  }
}

const rows = [];
function show(row) {
  rows.push(row);
  const s = (v) => (v == null ? '—' : `${v.toFixed(2)} s`);
  const m = (v) => (v == null ? '—' : `${(v / MB).toFixed(0)} MB`);
  const tr = document.createElement('tr');
  const region = row.region == null ? row.regionNote || '—' : `${s(row.region)} (|A| = ${row.regionVoxels})`;
  const growth =
    row.growthWasm == null
      ? '—'
      : `wasm ${m(row.growthWasm)}, GPU ${row.growthGpu == null ? '—' : m(row.growthGpu)} (${row.clicks} clicks)`;
  for (const v of [
    row.backend,
    row.study,
    s(row.start),
    s(row.load),
    s(row.segment),
    s(row.click),
    region,
    m(row.wasm),
    m(row.gpu),
    growth,
  ]) {
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(td);
  }
  $('results').querySelector('tbody').append(tr);
}

async function run() {
  $('run').disabled = true;
  window.__bench = { done: false, rows, conv: [] };
  // Studies are generated in a worker of their own, so that the generator's memory does not
  // count in the measured engine's wasm memory (which only grows).
  const gen = worker('cpu');
  await gen.ready;
  for (const backend of backends) {
    const w = worker(backend);
    let name = backend;
    let start;
    try {
      [name, start] = await timed(() => w.ready);
    } catch (e) {
      show({ backend, study: `could not start: ${e.message}` });
      w.close();
      continue;
    }
    if (name.startsWith('cpu')) {
      $('status').textContent = `${name}: the conv loop…`;
      window.__bench.step = $('status').textContent;
      await convSpeed(w, name);
    }
    for (const dims of sizes) {
      const row = { backend: name, study: dims.join('×'), start };
      const step = (what) => {
        $('status').textContent = `${name}, ${row.study}: ${what}…`;
        window.__bench.step = $('status').textContent;
      };
      step('generating the study');
      try {
        const file = await gen.call('sample', { i: 13, dims });
        step('loading');
        [, row.load] = await timed(() =>
          w.call('open', { files: [{ name: file.name, bytes: file.bytes.buffer }], roles: null }),
        );
        // Once more: the first load also grows the wasm memory (a one-time cost), the second is
        // the engine's own time (reading, normalising, the forward pass).
        step('loading again');
        [, row.reload] = await timed(() =>
          w.call('open', { files: [{ name: file.name, bytes: file.bytes.buffer }], roles: null }),
        );
        step('segmenting');
        const [{ mask }, segment] = await timed(() => w.call('segment'));
        row.segment = segment;
        const centre = dims.map((d) => Math.floor(d / 2));
        step('one click');
        const [, click] = await timed(() =>
          w.call('explain', { x: centre[0], y: centre[1], z: centre[2], cls: 1, composite: 'Epsilon' }),
        );
        row.click = click;
        const first = await w.call('memory');
        step(`${clicks - 1} more clicks`);
        const t0 = performance.now();
        for (let i = 1; i < clicks; i++)
          await w.call('explain', { x: centre[0], y: centre[1], z: centre[2], cls: 1, composite: 'Epsilon' });
        if (clicks > 1) row.clickMean = (performance.now() - t0) / 1000 / (clicks - 1);
        const last = await w.call('memory');
        row.clicks = clicks;
        row.growthWasm = last.wasm_bytes - first.wasm_bytes;
        row.growthGpu = first.device_in_use == null ? null : last.device_in_use - first.device_in_use;
        const at = regions ? nearestTumour(mask, dims) : null;
        if (!regions) {
          row.regionNote = 'not run';
        } else if (at) {
          step('region map');
          const [r, t] = await timed(() =>
            w.call('explainRegion', {
              x: at[0],
              y: at[1],
              z: at[2],
              cls: 1,
              composite: 'EpsilonGammaBox',
              scope: 'component',
            }),
          );
          row.region = t;
          row.regionVoxels = r.voxels;
        } else {
          row.regionNote = 'no predicted tumour';
        }
        const mem = await w.call('memory');
        row.wasm = mem.wasm_bytes;
        row.gpu = mem.device_reserved;
      } catch (e) {
        row.error = e.message;
        row.regionNote = `failed: ${e.message}`;
      }
      show(row);
    }
    w.close();
  }
  gen.close();
  $('status').textContent = 'done';
  $('run').disabled = false;
  window.__bench.done = true;
}

$('run').addEventListener('click', run);
if (params.has('auto')) run();
