// The page: file input and drop, the axial viewer, and the relevance panels.
import { Compute } from './compute.js';
import { SEQUENCES, windowOf, drawSlice, pixelToVoxel } from './render.js';

const $ = (id) => document.getElementById(id);
const state = { study: null, mask: null, windows: [], explanation: null, busy: false, queued: null };
// Read by the end-to-end test; also handy in the console.
window.__seglrp = state;

const status = (text, { error = false, busy = false } = {}) => {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
  $('cancel').hidden = !busy;
};

const compute = new Compute(({ backend }) => { $('backend').textContent = backend; state.backend = backend; });
compute.ready.catch((e) => status(`The engine could not start: ${e.message}`, { error: true }));

/** Runs `fn` with a progress line that counts seconds, so that long steps are visibly alive. */
async function withProgress(label, fn) {
  const t0 = performance.now();
  const tick = () => status(`${label}… ${((performance.now() - t0) / 1000).toFixed(1)} s`, { busy: true });
  tick();
  const timer = setInterval(tick, 200);
  try { return await fn(); } finally { clearInterval(timer); }
}

async function openStudy(bytes, name) {
  state.busy = true;
  try {
    const info = await withProgress(`Reading ${name}`, () => compute.load(bytes));
    const n = info.dims[0] * info.dims[1] * info.dims[2];
    const vol = Array.from({ length: info.channels }, (_, c) => info.data.subarray(c * n, (c + 1) * n));
    state.study = { ...info, name, channels: vol };
    state.windows = vol.map(windowOf);
    state.explanation = null;
    const { mask } = await withProgress('Segmenting', () => compute.run('segment'));
    state.mask = mask;
    setupViewer();
    const tumour = mask.reduce((n, v) => n + v, 0);
    status(`${name}: ${info.dims.join('×')} voxels, ${tumour} predicted tumour voxels. Click a voxel to explain it.`);
  } catch (e) {
    status(e.message === 'cancelled' ? 'Cancelled.' : `${name}: ${e.message}`, { error: e.message !== 'cancelled' });
  } finally {
    state.busy = false;
  }
}

function setupViewer() {
  const { dims } = state.study;
  $('viewer').hidden = false;
  const sel = $('channel');
  sel.innerHTML = SEQUENCES.map((s, i) => `<option value="${i}">${s}</option>`).join('');
  sel.value = '2';
  $('slice').max = dims[2] - 1;
  $('slice').value = Math.floor(dims[2] / 2);
  $('results').hidden = true;
  redraw();
}

function redraw() {
  if (!state.study) return;
  const z = +$('slice').value, c = +$('channel').value;
  $('slice-label').textContent = `${z + 1} / ${state.study.dims[2]}`;
  const mark = state.explanation && state.explanation.voxel[2] === z ? state.explanation.voxel : null;
  drawSlice($('axial'), state.study.dims, z, state.study.channels[c], state.windows[c], { mask: state.mask, mark });
}

async function explainAt(voxel) {
  if (state.busy) { state.queued = voxel; status('Busy: your click will be explained next.', { busy: true }); return; }
  state.busy = true;
  const cls = +$('class').value;
  try {
    const e = await withProgress(`Explaining voxel (${voxel.join(', ')})`, () => compute.run('explain', { x: voxel[0], y: voxel[1], z: voxel[2], cls }));
    state.explanation = e;
    showExplanation(e);
    status(`Voxel (${voxel.join(', ')}): logit ${e.logit.toFixed(4)}, Σ relevance ${e.relevance_sum.toFixed(4)} (${state.backend}).`);
  } catch (e) {
    status(e.message === 'cancelled' ? 'Cancelled.' : `Explaining failed: ${e.message}`, { error: e.message !== 'cancelled' });
  } finally {
    state.busy = false;
    redraw();
    if (state.queued) { const v = state.queued; state.queued = null; explainAt(v); }
  }
}

function showExplanation(e) {
  const { dims } = state.study;
  const n = dims[0] * dims[1] * dims[2];
  let rmax = 0;
  for (const v of e.relevance) rmax = Math.max(rmax, Math.abs(v));
  $('results').hidden = false;
  $('result-title').textContent = `Relevance for ${e.class === 1 ? 'tumour' : 'background'} at voxel (${e.voxel.join(', ')}), slice ${e.voxel[2] + 1}`;
  const panels = $('panels');
  panels.innerHTML = '';
  SEQUENCES.forEach((name, c) => {
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.dataset.channel = c;
    drawSlice(canvas, dims, e.voxel[2], state.study.channels[c], state.windows[c], {
      relevance: e.relevance.subarray(c * n, (c + 1) * n), rmax, mark: e.voxel,
    });
    const cap = document.createElement('figcaption');
    cap.textContent = `${name} — ${(100 * e.shares[c]).toFixed(1)} %`;
    fig.append(canvas, cap);
    panels.append(fig);
  });
  $('shares').innerHTML = '<tr><th>sequence</th><th>share of positive relevance</th><th></th></tr>' +
    SEQUENCES.map((s, c) => `<tr><td>${s}</td><td>${(100 * e.shares[c]).toFixed(1)} %</td><td><span class="bar" style="width:${200 * e.shares[c]}px"></span></td></tr>`).join('');
}

// ---- events
$('file').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  if (f) openStudy(new Uint8Array(await f.arrayBuffer()), f.name);
});
const drop = $('drop');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const f = ev.dataTransfer.files[0];
  if (f) openStudy(new Uint8Array(await f.arrayBuffer()), f.name);
});
$('sample').addEventListener('click', async () => {
  if (state.busy) return;
  try {
    const { bytes } = await withProgress('Generating the sample patient', () => compute.call('sample'));
    openStudy(bytes, 'sample patient');
  } catch (e) {
    status(e.message === 'cancelled' ? 'Cancelled.' : `The sample patient could not be made: ${e.message}`, { error: e.message !== 'cancelled' });
  }
});
$('cancel').addEventListener('click', async () => {
  state.queued = null;
  status('Cancelling…');
  await compute.restart();
  status('Cancelled.');
});
$('slice').addEventListener('input', redraw);
$('channel').addEventListener('change', redraw);
$('axial').addEventListener('click', (ev) => {
  if (!state.study) return;
  const [x, y] = pixelToVoxel($('axial'), state.study.dims, ev.clientX, ev.clientY);
  explainAt([x, y, +$('slice').value]);
});
