// The page: files in (drop or chooser, sequence assignment), the axial viewer, the relevance
// panels and the exports. All computing happens in the worker (compute.js).
import { Compute } from './compute.js';
import { SEQUENCES, windowOf, drawSlice, pixelToVoxel } from './render.js';
import { renderFiles } from './files.js';

const $ = (id) => document.getElementById(id);
const state = {
  files: [], roles: {}, reports: [], study: null, view: null, mask: null, windows: [],
  explanation: null, busy: false, queued: null,
};
// Read by the end-to-end test; also handy in the console.
window.__seglrp = state;

const status = (text, { error = false, busy = false } = {}) => {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
  $('cancel').hidden = !busy;
};
const failed = (what, e) => status(e.message === 'cancelled' ? 'Cancelled.' : `${what}: ${e.message}`, { error: e.message !== 'cancelled' });

// The demo cohort's 20 patients (phantom/mod.rs COHORT_SIZE).
$('patient').innerHTML = Array.from({ length: 20 }, (_, i) => `<option value="${i + 1}">${i + 1}</option>`).join('');

const compute = new Compute(({ backend }) => { $('backend').textContent = backend; state.backend = backend; });
compute.ready.catch((e) => status(`The engine could not start: ${e.message}`, { error: true }));

/** Runs `fn` with a progress line that counts seconds, so that long steps are visibly alive. */
async function withProgress(label, fn) {
  const t0 = performance.now();
  compute.progress = null;
  const tick = () => {
    const p = compute.progress;
    const part = p ? ` (window ${p.done} of ${p.total})` : '';
    status(`${label}… ${((performance.now() - t0) / 1000).toFixed(1)} s${part}`, { busy: true });
  };
  tick();
  const timer = setInterval(tick, 200);
  try { return await fn(); } finally { clearInterval(timer); }
}

const split = (data, dims, channels) => {
  const n = dims[0] * dims[1] * dims[2];
  return Array.from({ length: channels }, (_, c) => data.subarray(c * n, (c + 1) * n));
};

/**
 * New files join those already listed while they do not yet make a study (the user is
 * gathering sequences); once a study is loaded, a new drop starts a new study. A drop of which
 * nothing can be read changes nothing but shows why.
 */
async function addFiles(newFiles) {
  if (!newFiles.length || state.busy) return;
  const names = new Set(newFiles.map((f) => f.name));
  const candidate = state.study ? newFiles : [...state.files.filter((f) => !names.has(f.name)), ...newFiles];
  await openFiles(candidate, state.study ? {} : state.roles, newFiles);
}

async function openFiles(files, roles, fresh = files) {
  state.busy = true;
  try {
    const label = fresh.length === 1 ? fresh[0].name : `${fresh.length} files`;
    const result = await withProgress(`Reading ${label}`, () => compute.open(files, roles));
    const readable = result.files.filter((f) => !f.error);
    if (!result.study && !readable.length) {
      const errs = result.files.map((f) => `${f.name}: ${f.error}`).join(' — ');
      renderFiles($('files'), [...state.reports, ...result.files.filter((f) => fresh.some((n) => n.name === f.name))], onRole);
      status(errs, { error: true });
      return;
    }
    Object.assign(state, { files, roles, reports: result.files, explanation: null, mask: null });
    renderFiles($('files'), result.files, onRole);
    $('results').hidden = true;
    if (!result.study) {
      state.study = null;
      const p = result.preview;
      const names = p.channels === 1 ? [p.name] : Array.from({ length: p.channels }, (_, i) => `${p.name} — volume ${i + 1}`);
      showVolume({ dims: p.dims, channels: split(p.data, p.dims, p.channels), names });
      const errors = result.files.filter((f) => f.error).map((f) => `${f.name}: ${f.error}`);
      status([`Showing ${p.name}. ${result.problem}.`, ...errors].join(' — '), { error: errors.length > 0 });
      return;
    }
    const s = result.study;
    state.study = { ...s, channels: split(s.data, s.dims, s.channels) };
    showVolume({ dims: s.dims, channels: state.study.channels, names: SEQUENCES, label: s.label });
    const { mask } = await withProgress('Segmenting', () => compute.run('segment'));
    state.mask = mask;
    redraw();
    const tumour = mask.reduce((n, v) => n + v, 0);
    status(`${s.dims.join('×')} voxels (${s.orientation}), ${tumour} predicted tumour voxels. Click a voxel to explain it.`);
  } catch (e) {
    failed(`Reading the files failed`, e);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

function onRole(name, role) {
  if (state.busy) return;
  openFiles(state.files, { ...state.roles, [name]: role });
}

function showVolume({ dims, channels, names, label = null }) {
  state.view = { dims, channels, names, label };
  state.windows = channels.map(windowOf);
  $('viewer').hidden = false;
  const sel = $('channel');
  sel.innerHTML = names.map((s, i) => `<option value="${i}">${s}</option>`).join('');
  sel.value = names.length === 6 && names === SEQUENCES ? '2' : '0';
  $('slice').max = dims[2] - 1;
  $('slice').value = Math.floor(dims[2] / 2);
  redraw();
}

function redraw() {
  const v = state.view;
  if (!v) return;
  const z = +$('slice').value, c = +$('channel').value;
  $('slice-label').textContent = `${z + 1} / ${v.dims[2]}`;
  const mark = state.explanation && state.explanation.voxel[2] === z ? state.explanation.voxel : null;
  drawSlice($('axial'), v.dims, z, v.channels[c], state.windows[c], { mask: state.mask, label: v.label, mark, region: state.explanation?.region });
}

function updateButtons() {
  // tp/fn/fp compare the prediction with a label: offered only when the study has one.
  const labelled = Boolean(state.study?.label);
  for (const v of AGAINST_LABEL) {
    const o = document.querySelector(`#scope option[value="${v}"]`);
    o.disabled = !labelled;
    o.textContent = o.textContent.replace(/ \(needs a label\)$/, '') + (labelled ? '' : ' (needs a label)');
  }
  if (!labelled && AGAINST_LABEL.includes($('scope').value)) $('scope').value = 'all';
  $('save-seg').disabled = !state.mask;
  $('save-rel').disabled = !state.explanation;
}

// Regions that do not depend on the click, and those compared against the study's label.
const REGION_NAMES = { all: 'the predicted tumour', tp: 'the true positives', fn: 'the false negatives', fp: 'the false positives' };
const AGAINST_LABEL = ['tp', 'fn', 'fp'];

async function explainAt(voxel) {
  if (!state.study) { status('Explaining needs a complete study: all six sequences (see the file list).', { error: true }); return; }
  if (state.busy) { state.queued = voxel; status('Busy: your click will be explained next.', { busy: true }); return; }
  state.busy = true;
  const cls = +$('class').value;
  const composite = $('composite').value;
  const scope = $('scope').value;
  const where = `voxel (${voxel.join(', ')})`;
  try {
    const args = { x: voxel[0], y: voxel[1], z: voxel[2], cls, composite };
    const e = scope === 'voxel'
      ? await withProgress(`Explaining ${where} with ${composite}`, () => compute.run('explain', args))
      : await withProgress(`Explaining ${REGION_NAMES[scope] ?? `the tumour region at ${where}`} with ${composite} (two passes)`,
        () => compute.run('explainRegion', { ...args, scope, label: AGAINST_LABEL.includes(scope) ? state.study.label : null }));
    e.voxel = e.voxel ?? voxel;
    state.explanation = e;
    showExplanation(e);
    status(scope === 'voxel'
      ? `Voxel (${voxel.join(', ')}), ${composite}: logit ${e.logit.toFixed(4)}, Σ relevance ${e.relevance_sum.toFixed(4)} (${state.backend}).`
      : `Region of ${e.voxels} voxels, ${composite}: Σ M_A ${e.relevance_sum.toFixed(2)} for ${e.voxels - e.left_out} voxels kept, ${e.left_out} left out; conservation ${e.conservation.toFixed(3)} (input relevance / explained logits) (${state.backend}).`);
  } catch (e) {
    failed('Explaining failed', e);
  } finally {
    state.busy = false;
    updateButtons();
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
  const what = e.region ? `the region of ${e.voxels} voxels around (${e.voxel.join(', ')})` : `voxel (${e.voxel.join(', ')})`;
  $('result-title').textContent = `Relevance for ${e.class === 1 ? 'tumour' : 'background'} at ${what}, slice ${e.voxel[2] + 1}`;
  const panels = $('panels');
  panels.innerHTML = '';
  SEQUENCES.forEach((name, c) => {
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.dataset.channel = c;
    drawSlice(canvas, dims, e.voxel[2], state.study.channels[c], state.windows[c], {
      relevance: e.relevance.subarray(c * n, (c + 1) * n), rmax, mark: e.voxel, region: e.region,
    });
    const cap = document.createElement('figcaption');
    cap.textContent = `${name} — ${(100 * e.shares[c]).toFixed(1)} %`;
    fig.append(canvas, cap);
    panels.append(fig);
  });
  $('shares').innerHTML = '<tr><th>sequence</th><th>share of positive relevance</th><th></th></tr>' +
    SEQUENCES.map((s, c) => `<tr><td>${s}</td><td>${(100 * e.shares[c]).toFixed(1)} %</td><td><span class="bar" style="width:${200 * e.shares[c]}px"></span></td></tr>`).join('');
}

/** Hands bytes to the browser as a download: nothing is sent anywhere. */
function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/gzip' }));
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function save(op, args, name) {
  try {
    const { bytes } = await compute.call(op, args);
    download(bytes, name);
    status(`Saved ${name} (${(bytes.length / 1024).toFixed(0)} KiB) to your downloads.`);
  } catch (e) {
    failed(`Saving ${name} failed`, e);
  }
}

// ---- events
// The engine accepts at most 1 GiB of voxel data per file (README, "Reading NIfTI"); a bigger
// file is refused here, before the tab tries to hold it in memory.
const MAX_FILE_BYTES = (1 << 30) + (64 << 20) + 1024;
async function readFiles(list) {
  const files = Array.from(list);
  const big = files.filter((f) => f.size > MAX_FILE_BYTES);
  if (big.length) {
    status(big.map((f) => `${f.name}: ${(f.size / 2 ** 30).toFixed(1)} GiB is more than the 1 GiB of image data this tool accepts; crop or downsample it first`).join(' — '), { error: true });
  }
  return Promise.all(files.filter((f) => f.size <= MAX_FILE_BYTES).map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}
$('file').addEventListener('change', async (ev) => {
  addFiles(await readFiles(ev.target.files));
  ev.target.value = '';
});
const drop = $('drop');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  addFiles(await readFiles(ev.dataTransfer.files));
});
$('load-patient').addEventListener('click', async () => {
  if (state.busy) return;
  const i = +$('patient').value;
  try {
    // The same files `seglrp phantoms` writes: six sequences and the label, as a user drops them.
    state.busy = true;
    const files = await withProgress(`Generating demo patient ${i}`, () => compute.call('cohort', { i })).finally(() => { state.busy = false; });
    await openFiles(files, {});
  } catch (e) {
    failed(`Demo patient ${i} could not be made`, e);
  }
});
async function modelChanged(promise, name) {
  state.busy = true;
  try {
    const info = await withProgress(`Loading the model ${name}`, () => promise());
    $('model-name').textContent = `${name} (${info.config.levels} levels, ${info.config.base_channels} base channels, ${info.parameters.toLocaleString('en')} parameters)`;
    $('model-bundled').hidden = name === 'bundled liver U-Net';
    state.model = { name, ...info };
    state.busy = false;
    // The loaded study's segmentation belonged to the old model: open it again.
    if (state.study) await openFiles(state.files, state.roles);
    else status(`Model ${name} loaded.`);
  } catch (e) {
    failed(`The model ${name} was not loaded (the previous one stays)`, e);
  } finally {
    state.busy = false;
  }
}
$('model-file').addEventListener('change', async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = '';
  if (state.busy || !files.length) return;
  const weights = files.find((f) => /\.safetensors$/i.test(f.name));
  const config = files.find((f) => /\.json$/i.test(f.name));
  if (!weights) {
    status('Choose a .safetensors file (and, if its configuration is not inside it, the .json beside it).', { error: true });
    return;
  }
  const bytes = new Uint8Array(await weights.arrayBuffer());
  const json = config ? await config.text() : null;
  await modelChanged(() => compute.loadModel(bytes, json), weights.name);
});
$('model-bundled').addEventListener('click', () => {
  if (!state.busy) modelChanged(() => compute.loadModel(null), 'bundled liver U-Net');
});
$('clear').addEventListener('click', () => {
  if (state.busy) return;
  Object.assign(state, { files: [], roles: {}, reports: [], study: null, view: null, mask: null, explanation: null });
  renderFiles($('files'), [], onRole);
  $('viewer').hidden = true;
  $('results').hidden = true;
  updateButtons();
  status('');
});
$('cancel').addEventListener('click', async () => {
  state.queued = null;
  status('Cancelling…');
  await compute.restart();
  status('Cancelled.');
});
$('save-seg').addEventListener('click', () => save('exportSegmentation', { mask: state.mask }, 'segmentation.nii.gz'));
$('save-rel').addEventListener('click', () => {
  const [x, y, z] = state.explanation.voxel;
  save('exportRelevance', { relevance: state.explanation.relevance }, `relevance_${x}_${y}_${z}.nii.gz`);
});
$('slice').addEventListener('input', redraw);
$('channel').addEventListener('change', redraw);
$('axial').addEventListener('click', (ev) => {
  if (!state.view) return;
  const [x, y] = pixelToVoxel($('axial'), state.view.dims, ev.clientX, ev.clientY);
  explainAt([x, y, +$('slice').value]);
});
