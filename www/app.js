// The page: files in (drop or chooser, sequence assignment), the NiiVue views, the relevance
// panels, the plots, the cohort and the exports. All computing happens in the worker
// (compute.js); all viewing in NiiVue (viewer.js).
import { Compute } from './compute.js';
import { windowOf } from './sequences.js';
import { names, setNames } from './catalogue.js';
import { renderFiles } from './files.js';
import { Viewer } from './viewer.js';
import { drawBars, drawParallel, colourOf, pngOf } from './charts.js';
import { Cohort } from './cohort.js';
import { Pool, poolSize } from './pool.js';

const $ = (id) => document.getElementById(id);
const state = {
  files: [],
  roles: {},
  reports: [],
  study: null,
  view: null,
  mask: null,
  name: null,
  explanation: null,
  busy: false,
  queued: null,
  cohortRun: null,
};
// Read by the end-to-end test; also handy in the console.
window.__seglrp = state;

const status = (text, { error = false, busy = false } = {}) => {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
  $('cancel').hidden = !busy;
};
const failed = (what, e) =>
  status(e.message === 'cancelled' ? 'Cancelled.' : `${what}: ${e.message}`, { error: e.message !== 'cancelled' });

/**
 * Runs `work` as the page's one busy task: while it runs, other requests are turned away (or,
 * for a click, queued by `explain`); afterwards the buttons follow the new state.
 */
async function withBusy(work) {
  state.busy = true;
  try {
    return await work();
  } finally {
    state.busy = false;
    updateButtons();
  }
}

const compute = new Compute(({ backend, limits }) => {
  $('backend').textContent = backend;
  $('backend').title = limits
    ? `where the network runs; largest GPU buffer ${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`
    : 'where the network runs';
  state.backend = backend;
});
compute.ready.catch((e) => status(`The engine could not start: ${e.message}`, { error: true }));
state.compute = compute;

// Every name the page shows or sends back (sequences, classes, composites, regions, file roles,
// the plot's axes, the demo cohort's size) comes from the engine with its `ready` message.
await compute.ready.catch(() => {});
setNames(compute.catalogue ?? {});
const { sequences: SEQUENCES, plotOrder: PLOT_ORDER } = names;
const option = (value, text, extra = '') => `<option value="${value}"${extra}>${text}</option>`;
$('patient').innerHTML = Array.from({ length: names.demoPatients }, (_, i) => option(i + 1, i + 1)).join('');
$('cohort-size').max = names.demoPatients;
$('cohort-size').value = names.demoPatients;
// The last class is the foreground of a two-class model: explained by default.
$('class').innerHTML = names.classes
  .map((c, i) => option(i, c, i === names.classes.length - 1 ? ' selected' : ''))
  .join('');
$('composite').innerHTML = names.composites.map((c) => option(c, c)).join('');
// Regions that need a label or a drawing start disabled (updateButtons, the drawing menu).
$('scope').innerHTML = names.scopes
  .map((s) => option(s.name, s.label + (s.needs ? ` (needs a ${s.needs})` : ''), s.needs ? ' disabled' : ''))
  .join('');

// The six relevance panels, one per sequence, as in the figure of Chlebus et al. 2019.
const captions = SEQUENCES.map((name) => {
  const fig = document.createElement('figure');
  const box = document.createElement('div');
  box.className = 'panel';
  const canvas = document.createElement('canvas');
  canvas.dataset.channel = name;
  box.append(canvas);
  const cap = document.createElement('figcaption');
  cap.textContent = name;
  fig.append(box, cap);
  $('panels').append(fig);
  return cap;
});
const viewer = new Viewer($('main'), [...document.querySelectorAll('#panels canvas')], {
  onPick: (v) => explain(v),
  onMove: (v) => {
    if (!v || !state.view) return;
    const i = v[0] + state.view.dims[0] * (v[1] + state.view.dims[1] * v[2]);
    const what = state.mask ? (state.mask[i] ? ', predicted tumour' : ', background') : '';
    $('location').textContent = `crosshair: voxel (${v.join(', ')})${what}`;
  },
});
state.viewer = viewer;
viewer.ready.catch((e) => status(`The viewer could not start (it needs WebGL 2): ${e.message}`, { error: true }));

const cohort = new Cohort();
state.cohort = cohort;

/** Runs `fn` with a progress line that counts seconds, so that long steps are visibly alive. */
async function withProgress(label, fn) {
  const t0 = performance.now();
  compute.progress = null;
  const tick = () => {
    const p = compute.progress;
    // A label function reports its own progress (the cohort's workers).
    const part =
      !p || typeof label === 'function'
        ? ''
        : p.stage === 'region'
          ? ` (LRP pass ${p.done} of ${p.total} done)`
          : ` (window ${p.done} of ${p.total})`;
    const prefix = typeof label === 'function' ? label() : label;
    status(`${prefix}… ${((performance.now() - t0) / 1000).toFixed(1)} s${part}`, { busy: true });
  };
  tick();
  const timer = setInterval(tick, 200);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
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
async function addFiles(newFiles, refused = []) {
  if (!newFiles.length || state.busy) return;
  const names = new Set(newFiles.map((f) => f.name));
  const candidate = state.study ? newFiles : [...state.files.filter((f) => !names.has(f.name)), ...newFiles];
  await openFiles(candidate, state.study ? {} : state.roles, newFiles, null, refused);
}

/** The study's NaN/Inf voxels that were set to 0, per sequence, in words ('' when none). */
const nonFiniteText = (counts = []) => {
  const parts = counts.map((n, c) => (n ? `${n} in ${SEQUENCES[c]}` : null)).filter(Boolean);
  return parts.length ? ` NaN or infinite voxels set to 0: ${parts.join(', ')}.` : '';
};

/**
 * Opens files as a study (or a preview), segments it, and shows it. Returns true for a study.
 * `refused`: files of the same drop refused by their header check (`{name, error}`), listed too.
 */
async function openFiles(files, roles, fresh = files, name = null, refused = []) {
  return withBusy(async () => {
    try {
      const label = fresh.length === 1 ? fresh[0].name : `${fresh.length} files`;
      const result = await withProgress(`Reading ${label}`, () => compute.open(files, roles));
      const readable = result.files.filter((f) => !f.error);
      if (!result.study && !readable.length) {
        const errs = result.files.map((f) => `${f.name}: ${f.error}`).join(' — ');
        renderFiles(
          $('files'),
          [...state.reports, ...result.files.filter((f) => fresh.some((n) => n.name === f.name))],
          onRole,
        );
        status(errs, { error: true });
        return false;
      }
      Object.assign(state, { files, roles, reports: result.files, explanation: null, mask: null });
      renderFiles($('files'), [...result.files, ...refused], onRole);
      $('results').hidden = true;
      if (!result.study) {
        state.study = null;
        const p = result.preview;
        const names =
          p.channels === 1 ? [p.name] : Array.from({ length: p.channels }, (_, i) => `${p.name} — volume ${i + 1}`);
        await showVolume({ dims: p.dims, affine: p.affine, channels: split(p.data, p.dims, p.channels), names });
        const errors = [...result.files, ...refused].filter((f) => f.error).map((f) => `${f.name}: ${f.error}`);
        status([`Showing ${p.name}. ${result.problem}.`, ...errors].join(' — '), { error: errors.length > 0 });
        return false;
      }
      const s = result.study;
      state.study = { ...s, channels: split(s.data, s.dims, s.channels) };
      state.name = name ?? studyName(s.sources);
      await showVolume({
        dims: s.dims,
        affine: s.affine,
        channels: state.study.channels,
        names: SEQUENCES,
        label: s.label,
      });
      const { mask } = await withProgress('Segmenting', () => compute.run('segment'));
      state.mask = mask;
      await viewer.setOverlays({ mask, label: s.label ?? null });
      const tumour = mask.reduce((n, v) => n + v, 0);
      const nanText = nonFiniteText(s.non_finite);
      const refusedText = refused.map((f) => ` ${f.name} was not read: ${f.error}.`).join('');
      status(
        `${state.name}: ${s.dims.join('×')} voxels (${s.orientation}), ${tumour} predicted tumour voxels.${nanText}${refusedText} Double-click a voxel (or press Explain) to explain it.`,
        { error: refused.length > 0 },
      );
      return true;
    } catch (e) {
      failed(`Reading the files failed`, e);
      return false;
    }
  });
}

/** A study's name for the cohort: its files' common prefix ("patient13_t2.nii" … → "patient13"), or its one file. */
function studyName(sources) {
  const names = [...new Set((sources ?? []).filter(Boolean))];
  if (!names.length) return 'study';
  if (names.length === 1) return names[0];
  let prefix = names[0];
  for (const n of names) while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  // Cut back to a whole token: "patient13_t" (from _t2, _t1…) is "patient13".
  if (/[\s_.-]/.test(prefix)) prefix = prefix.replace(/[^\s_.-]*$/, '');
  prefix = prefix.replace(/[\s_.-]+$/, '');
  return prefix.length >= 3 ? prefix : `${names[0]} + ${names.length - 1}`;
}

function onRole(name, role) {
  if (state.busy) return;
  openFiles(state.files, { ...state.roles, [name]: role });
}

async function showVolume({ dims, affine, channels, names, label = null }) {
  const windows = channels.map(windowOf);
  state.view = { dims, channels, names, label };
  $('viewer').hidden = false;
  const sel = $('channel');
  sel.innerHTML = names.map((s, i) => `<option value="${i}">${s}</option>`).join('');
  await viewer.showStudy({ dims, affine, channels, windows, names });
  sel.value = String(viewer.sequence);
}

function updateButtons() {
  // tp/fn/fp compare the prediction with a label: offered only when the study has one.
  const labelled = Boolean(state.study?.label);
  for (const v of AGAINST_LABEL) {
    const o = document.querySelector(`#scope option[value="${v}"]`);
    o.disabled = !labelled;
    o.textContent = scopeLabel(v) + (labelled ? '' : ' (needs a label)');
  }
  if (!labelled && AGAINST_LABEL.includes($('scope').value)) $('scope').value = 'all';
  $('save-seg').disabled = !state.mask;
  $('save-rel').disabled = !state.explanation;
  $('explain').disabled = !state.study;
  $('save-csv').disabled = !cohort.rows.length;
  $('save-plot').disabled = !cohort.rows.length;
}

// Regions that do not depend on the crosshair (named by the engine's catalogue), and those
// compared against the study's label.
const CROSSHAIR = ['voxel', 'component'];
const REGION_NAMES = Object.fromEntries(
  names.scopes.filter((s) => !CROSSHAIR.includes(s.name)).map((s) => [s.name, s.label]),
);
const AGAINST_LABEL = names.scopes.filter((s) => s.needs === 'label').map((s) => s.name);
const scopeLabel = (name) => names.scopes.find((s) => s.name === name)?.label ?? name;

/** Explains at voxel `voxel` (the crosshair) with the panel's class, scope and composite. */
async function explain(voxel = viewer.crosshair()) {
  if (!state.study) {
    status('Explaining needs a complete study: all six sequences (see the file list).', { error: true });
    return;
  }
  if (!voxel) return;
  if (state.busy) {
    state.queued = voxel;
    status('Busy: your request will be explained next.', { busy: true });
    return;
  }
  const cls = +$('class').value;
  const composite = $('composite').value;
  const scope = $('scope').value;
  await withBusy(async () => {
    try {
      const e = await explainWith({ voxel, cls, composite, scope });
      if (!e) return;
      await showExplanation(e);
      status(
        scope === 'voxel'
          ? `Voxel (${voxel.join(', ')}), ${composite}: logit ${e.logit.toFixed(4)}, Σ relevance ${e.relevance_sum.toFixed(4)} (${state.backend}).`
          : `Region of ${e.voxels} voxels, ${composite}: Σ M_A ${e.relevance_sum.toFixed(2)} for ${e.voxels - e.left_out} voxels kept, ${e.left_out} left out; conservation ${e.conservation.toFixed(3)} (input relevance / explained logits) (${state.backend}).`,
      );
    } catch (e) {
      failed('Explaining failed', e);
    }
  });
  if (state.queued) {
    const v = state.queued;
    state.queued = null;
    explain(v);
  }
}

/** One explanation in the worker; returns it with what it explained, or null if nothing to do. */
async function explainWith({ voxel, cls, composite, scope }) {
  const where = `voxel (${voxel.join(', ')})`;
  const args = { x: voxel[0], y: voxel[1], z: voxel[2], cls, composite };
  let e;
  if (scope === 'voxel') {
    e = await withProgress(`Explaining ${where} with ${composite}`, () => compute.run('explain', args));
  } else {
    let label = null;
    if (AGAINST_LABEL.includes(scope)) label = state.study.label;
    if (scope === 'drawn') {
      label = await viewer.drawnMask();
      if (!label) {
        status('Draw a region first (Draw a region: brush or box), then explain it.', { error: true });
        return null;
      }
    }
    e = await withProgress(
      `Explaining ${REGION_NAMES[scope] ?? `the tumour region at ${where}`} with ${composite} (two passes)`,
      () => compute.run('explainRegion', { ...args, scope, label }),
    );
  }
  e.voxel = e.voxel ?? voxel;
  Object.assign(e, { scope, composite, study: state.name });
  return e;
}

const regionText = (e) =>
  e.scope === 'voxel'
    ? `voxel (${e.voxel.join(', ')})`
    : e.scope === 'component'
      ? `the tumour at (${e.voxel.join(', ')}), ${e.voxels} voxels`
      : `${REGION_NAMES[e.scope]}, ${e.voxels} voxels`;

async function showExplanation(e) {
  state.explanation = e;
  $('results').hidden = false;
  $('result-title').textContent =
    `${state.name}: relevance for ${e.class === 1 ? 'tumour' : 'background'} at ${regionText(e)} (${e.composite})`;
  // No positive relevance anywhere: no shares (they would be six zeros that do not sum to 1).
  const pct = (v) => (v == null ? '—' : `${(100 * v).toFixed(1)} %`);
  SEQUENCES.forEach((name, c) => {
    captions[c].textContent = `${name} — ${e.shares ? pct(e.shares[c]) : 'no positive relevance'}`;
  });
  await viewer.showRelevance(e.relevance, e.region);
  viewer.moveTo(e.region ? centreOf(e.region, state.study.dims) : e.voxel);
  drawBars($('bars'), SEQUENCES, e.shares, 'Share of positive relevance per sequence');
  $('shares').innerHTML =
    '<tr><th>sequence</th><th>share of positive relevance</th><th>signed share</th></tr>' +
    (e.shares
      ? SEQUENCES.map(
          (s, c) => `<tr><td>${s}</td><td>${pct(e.shares[c])}</td><td>${pct(e.signed_shares?.[c])}</td></tr>`,
        ).join('')
      : '<tr><td colspan="3">No positive relevance: every voxel\'s relevance is zero or negative, so there are no shares.</td></tr>');
  $('result-figures').textContent =
    e.scope === 'voxel'
      ? `Logit ${e.logit.toFixed(4)}; Σ input relevance ${e.relevance_sum.toFixed(4)}.`
      : `Conservation ${e.conservation.toFixed(3)} (input relevance / explained logits); ${e.left_out} of ${e.voxels} voxels left out (no positive relevance to normalise by).`;
  addToCohort({ ...e, non_finite: (state.study?.non_finite ?? []).reduce((a, b) => a + b, 0) });
  drawCohort();
}

/** An explanation (of the page or of a cohort worker) as a line of the cohort. */
function addToCohort(e) {
  cohort.add({
    study: e.study,
    region: regionText(e),
    class: e.class === 1 ? 'tumour' : 'background',
    composite: e.composite,
    voxels: e.voxels ?? 1,
    left_out: e.left_out ?? 0,
    conservation: e.conservation ?? null,
    shares: e.shares ? Array.from(e.shares) : null,
    note: e.no_shares ?? null,
    non_finite: e.non_finite ?? 0,
  });
}

/** The region's voxel nearest its centroid: where its panels are shown. */
function centreOf(region, [nx, ny]) {
  let n = 0;
  const sum = [0, 0, 0];
  const at = (i) => [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
  region.forEach((v, i) => {
    if (v) {
      const p = at(i);
      for (let k = 0; k < 3; k++) sum[k] += p[k];
      n++;
    }
  });
  const c = sum.map((s) => s / n);
  let best = null,
    dmin = Infinity;
  region.forEach((v, i) => {
    if (!v) return;
    const p = at(i);
    const d = (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2;
    if (d < dmin) {
      dmin = d;
      best = p;
    }
  });
  return best;
}

function drawCohort() {
  drawParallel($('cohort-plot'), SEQUENCES, PLOT_ORDER, cohort.rows);
  $('cohort-table').innerHTML = cohort.rows.length
    ? `<tr><th></th><th>study</th><th>region</th><th>composite</th>${PLOT_ORDER.map((c) => `<th>${SEQUENCES[c]}</th>`).join('')}</tr>` +
      cohort.rows
        .map(
          (r, i) =>
            `<tr><td><span class="swatch" style="background:${colourOf(i)}"></span></td><td>${escapeHtml(r.study)}</td><td>${escapeHtml(r.region)}</td><td>${r.composite}</td>${r.shares ? PLOT_ORDER.map((c) => `<td>${(100 * r.shares[c]).toFixed(1)} %</td>`).join('') : `<td colspan="${PLOT_ORDER.length}">${escapeHtml(r.note ?? 'no positive relevance')}</td>`}</tr>`,
        )
        .join('')
    : '';
  updateButtons();
}
const escapeHtml = (s) =>
  String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/**
 * The cohort figure of Chlebus et al. 2019: each demo patient generated, segmented and explained over all its
 * predicted tumour (class tumour, the chosen composite), on a pool of workers (pool.js); the
 * lines join the plot in patient order. The loaded study stays as it is. Cancel stops it.
 */
async function runCohort() {
  if (state.busy) return;
  const n = Math.max(1, Math.min(names.demoPatients, +$('cohort-size').value || names.demoPatients));
  const composite = $('composite').value;
  const asked = +new URLSearchParams(location.search).get('workers') || null;
  const size = Math.min(
    n,
    poolSize(state.backend, {
      cores: navigator.hardwareConcurrency || 4,
      memoryGB: navigator.deviceMemory ?? null,
      asked,
    }),
  );
  const run = { cancelled: false, pool: new Pool(compute, size) };
  state.cohortRun = run;
  const t0 = performance.now();
  const results = new Map();
  const running = new Map();
  const failures = [];
  let next = 1;
  let done = 0;
  const line = () => {
    const eta = done ? `, about ${Math.round((((performance.now() - t0) / done) * (n - done)) / 1000)} s left` : '';
    const now = [...running.keys()]
      .sort((a, b) => a - b)
      .map((i) => {
        const p = running.get(i).progress;
        return `patient ${i}${p?.stage === 'region' ? ` (LRP pass ${p.done} of ${p.total} done)` : ''}`;
      });
    return `Cohort: ${done} of ${n} patients explained on ${size} worker${size > 1 ? 's' : ''}${eta}${now.length ? `; now ${now.join(', ')}` : ''}`;
  };
  // Rows join the cohort in patient order, whatever order the workers finish in.
  const flush = () => {
    for (; results.has(next); next++) {
      const r = results.get(next);
      if (r?.voxels) addToCohort({ ...r, scope: 'all', composite, study: `demo patient ${next}` });
    }
    drawCohort();
  };
  await withBusy(async () => {
    try {
      await withProgress(`Starting ${size} cohort worker${size > 1 ? 's' : ''}`, () => run.pool.start());
      await withProgress(line, () =>
        run.pool.map(
          Array.from({ length: n }, (_, k) => k + 1),
          (w, i) => w.run('demoPatient', { i, composite }),
          {
            stopped: () => run.cancelled,
            onStart: (i, w) => {
              w.progress = null;
              running.set(i, w);
            },
            onResult: (i, r, e) => {
              running.delete(i);
              if (e) failures.push(`patient ${i}: ${e.message}`);
              else done++;
              results.set(i, r);
              flush();
            },
          },
        ),
      );
      const none = [...results.values()].filter((r) => r && !r.voxels).map((r) => r.patient);
      const skip = none.length ? ` Patients without predicted tumour (no line): ${none.join(', ')}.` : '';
      const fail = failures.length ? ` Failed: ${failures.join('; ')}.` : '';
      status(
        run.cancelled
          ? `Cohort stopped after ${done} patients.${skip}`
          : `Cohort: ${done} patients explained in ${((performance.now() - t0) / 1000).toFixed(0)} s on ${size} worker${size > 1 ? 's' : ''}.${skip}${fail}`,
        { error: failures.length > 0 },
      );
    } catch (e) {
      failed('The cohort run stopped', e);
    } finally {
      run.pool.close();
      state.cohortRun = null;
    }
  });
}

/** Hands bytes to the browser as a download: nothing is sent anywhere. */
function download(data, name, type = 'application/octet-stream') {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  status(`Saved ${name} (${(blob.size / 1024).toFixed(0)} KiB) to your downloads.`);
}

async function save(op, args, name) {
  try {
    const { bytes } = await compute.call(op, args);
    download(bytes, name, 'application/gzip');
  } catch (e) {
    failed(`Saving ${name} failed`, e);
  }
}

const fileStem = () => (state.name ?? 'study').replace(/[^\w.-]+/g, '_');

// ---- events
// Each file is judged by its header before it is read (web.rs check_file): a refused file costs
// the page its first MiB whatever its size, and an uncompressed file is read only as far as its
// image goes. A `.hdr` is small (header and extensions) and is read whole.
const PREFIX_BYTES = 1 << 20;
const MAX_HDR_BYTES = (64 << 20) + (1 << 20);
const bytesOf = async (blob) => new Uint8Array(await blob.arrayBuffer());
const pairStem = (name) => name.toLowerCase().replace(/\.(hdr|img)(\.gz)?$/, '');
const isHdr = (name) => /\.hdr(\.gz)?$/i.test(name);
const isImg = (name) => /\.img(\.gz)?$/i.test(name);

async function readFile(f, files) {
  if (isHdr(f.name)) {
    if (f.size > MAX_HDR_BYTES)
      throw new Error(`${(f.size / 2 ** 20).toFixed(0)} MiB is larger than any NIfTI header with its extensions`);
    return { name: f.name, bytes: await bytesOf(f), size: f.size };
  }
  const hdr = isImg(f.name) ? files.find((g) => isHdr(g.name) && pairStem(g.name) === pairStem(f.name)) : null;
  // An .img without its .hdr: the engine says which file is missing.
  if (isImg(f.name) && !hdr) return { name: f.name, bytes: new Uint8Array(0), size: f.size };
  const prefix = await bytesOf((hdr ?? f).slice(0, PREFIX_BYTES));
  const imgStart = hdr ? await bytesOf(f.slice(0, 2)) : null;
  const plan = await compute.call('check', { prefix: prefix.buffer, size: f.size, imgStart: imgStart?.buffer ?? null });
  return { name: f.name, bytes: await bytesOf(plan.read == null ? f : f.slice(0, plan.read)), size: f.size };
}

/** The dropped files that pass their header check, and `{name, error}` for those that do not. */
async function readFiles(list) {
  const files = Array.from(list);
  const read = [],
    refused = [];
  for (const f of files) {
    try {
      read.push(await readFile(f, files));
    } catch (e) {
      refused.push({ name: f.name, error: e.message });
    }
  }
  return { read, refused };
}
async function dropped(list) {
  const { read, refused } = await readFiles(list);
  if (refused.length && !read.length) {
    renderFiles($('files'), [...state.reports, ...refused], onRole);
    status(refused.map((r) => `${r.name}: ${r.error}`).join(' — '), { error: true });
    return;
  }
  await addFiles(read, refused);
}
$('file').addEventListener('change', async (ev) => {
  await dropped(ev.target.files);
  ev.target.value = '';
});
const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  await dropped(ev.dataTransfer.files);
});
$('load-patient').addEventListener('click', async () => {
  if (state.busy) return;
  const i = +$('patient').value;
  try {
    // The same files `seglrp phantoms` writes: six sequences and the label, as a user drops them.
    const files = await withBusy(() =>
      withProgress(`Generating demo patient ${i}`, () => compute.call('cohort', { i })),
    );
    await openFiles(files, {}, files, `demo patient ${i}`);
  } catch (e) {
    failed(`Demo patient ${i} could not be made`, e);
  }
});
async function modelChanged(promise, name) {
  const loaded = await withBusy(async () => {
    try {
      const info = await withProgress(`Loading the model ${name}`, () => promise());
      $('model-name').textContent =
        `${name} (${info.config.levels} levels, ${info.config.base_channels} base channels, ${info.parameters.toLocaleString('en')} parameters)`;
      $('model-bundled').hidden = name === 'bundled liver U-Net';
      state.model = { name, ...info };
      return true;
    } catch (e) {
      failed(`The model ${name} was not loaded (the previous one stays)`, e);
      return false;
    }
  });
  if (!loaded) return;
  // The loaded study's segmentation belonged to the old model: open it again.
  if (state.study) await openFiles(state.files, state.roles, state.files, state.name);
  else status(`Model ${name} loaded.`);
}
$('model-file').addEventListener('change', async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = '';
  if (state.busy || !files.length) return;
  const weights = files.find((f) => /\.safetensors$/i.test(f.name));
  const config = files.find((f) => /\.json$/i.test(f.name));
  if (!weights) {
    status('Choose a .safetensors file (and, if its configuration is not inside it, the .json beside it).', {
      error: true,
    });
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
  if (state.cohortRun) {
    state.cohortRun.cancelled = true;
    state.cohortRun.pool.close();
  }
  status('Cancelling…');
  await compute.restart();
  status('Cancelled.');
});
$('explain').addEventListener('click', () => explain());
$('save-seg').addEventListener('click', () =>
  save('exportSegmentation', { mask: state.mask }, `${fileStem()}_segmentation.nii.gz`),
);
$('save-rel').addEventListener('click', () => {
  const [x, y, z] = state.explanation.voxel;
  save(
    'exportRelevance',
    { relevance: state.explanation.relevance },
    `${fileStem()}_relevance_${state.explanation.scope}_${x}_${y}_${z}.nii.gz`,
  );
});
$('save-figure').addEventListener('click', async () =>
  download(await viewer.figurePng(captions.map((c) => c.textContent)), `${fileStem()}_relevance_panels.png`),
);
$('save-bars').addEventListener('click', async () => download(await pngOf($('bars')), `${fileStem()}_shares.png`));
$('save-plot').addEventListener('click', async () =>
  download(await pngOf($('cohort-plot')), 'cohort_relevance_parallel.png'),
);
$('save-csv').addEventListener('click', () => download(cohort.csv(), 'cohort_relevance_shares.csv', 'text/csv'));
$('clear-cohort').addEventListener('click', () => {
  cohort.clear();
  drawCohort();
});
$('run-cohort').addEventListener('click', runCohort);
$('channel').addEventListener('change', () => viewer.setSequence(+$('channel').value));
$('layout').addEventListener('change', () => viewer.setLayout($('layout').value));
$('draw').addEventListener('change', () => {
  viewer.setDrawing($('draw').value || null);
  const o = document.querySelector('#scope option[value="drawn"]');
  o.disabled = false;
  o.textContent = scopeLabel('drawn');
  if ($('draw').value) $('scope').value = 'drawn';
});
$('clear-drawing').addEventListener('click', () => viewer.clearDrawing());
const display = () => {
  const t = +$('threshold').value;
  $('threshold-label').textContent = `${Math.round(100 * t)} % of max |R|`;
  viewer.setDisplay({ threshold: t, opacity: +$('opacity').value });
};
$('threshold').addEventListener('input', display);
$('opacity').addEventListener('input', display);
drawCohort();

// Offline after the first visit: the service worker keeps the page, the engine and NiiVue.
if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  navigator.serviceWorker.register('./sw.js').catch((e) => console.warn(`offline use unavailable: ${e.message}`));
}
