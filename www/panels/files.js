// The input panel: files dropped or chosen, checked by their headers, read as a study for the
// model in use (its channels matched by name, correctable in the file list), or shown as a
// preview while they do not yet make one; the demo patients; clearing.
import { store, withBusy, settled, clearStudy } from '../store.js';
import { names } from '../catalogue.js';
import { status, failed, withProgress } from '../status.js';
import { renderFiles, renderGrid } from './file-list.js';
import { windowOf } from '../sequences.js';
import { isModelDrop, loadModelFiles } from './model.js';

const $ = (id) => document.getElementById(id);

const split = (data, dims, channels) => {
  const n = dims[0] * dims[1] * dims[2];
  return Array.from({ length: channels }, (_, c) => data.subarray(c * n, (c + 1) * n));
};

/** The study's NaN/Inf voxels that were set to 0, per channel, in words ('' when none). */
const nonFiniteText = (counts = []) => {
  const parts = counts.map((n, c) => (n ? `${n} in ${names.sequences[c]}` : null)).filter(Boolean);
  return parts.length ? ` NaN or infinite voxels set to 0: ${parts.join(', ')}.` : '';
};

/** A study's name for the cohort: its files' common prefix ("patient13_t2.nii" … → "patient13"), or its one file. */
export function studyName(sources) {
  const all = [...new Set((sources ?? []).filter(Boolean))];
  if (!all.length) return 'study';
  if (all.length === 1) return all[0];
  let prefix = all[0];
  for (const n of all) while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  // Cut back to a whole token: "patient13_t" (from _t2, _t1…) is "patient13".
  if (/[\s_.-]/.test(prefix)) prefix = prefix.replace(/[^\s_.-]*$/, '');
  prefix = prefix.replace(/[\s_.-]+$/, '');
  return prefix.length >= 3 ? prefix : `${all[0]} + ${all.length - 1}`;
}

/** What the segmentation found, in words: the foreground of a two-class model, else per class. */
function found(mask) {
  const counts = new Array(names.classes.length).fill(0);
  for (const v of mask) counts[v]++;
  if (names.classes.length === 2) return `${counts[1]} predicted ${names.classes[1]} voxels`;
  return names.classes
    .slice(1)
    .map((c, i) => `${counts[i + 1]} ${c}`)
    .join(', ')
    .concat(' voxels predicted');
}

async function showVolume({ dims, affine, channels, names: shown, label = null }) {
  const windows = channels.map(windowOf);
  store.view = { dims, channels, names: shown, label };
  $('viewer').hidden = false;
  $('channel').innerHTML = shown.map((s, i) => `<option value="${i}">${s}</option>`).join('');
  await store.viewer.showStudy({ dims, affine, channels, windows, names: shown });
  $('channel').value = String(store.viewer.sequence);
}

function onRole(name, role) {
  if (store.busy) return;
  openFiles(store.files, { ...store.roles, [name]: role });
}

function onGrid(channel) {
  if (store.busy) return;
  store.grid = channel;
  openFiles(store.files, store.roles);
}

/** The reference-grid menu, where a model other than the liver one reads channels from several files. */
function showGrid() {
  const images = store.reports.filter((r) => !r.error && r.role !== 'label' && r.role !== 'unused');
  const offered = !names.model?.liver && names.sequences.length > 1 && images.length > 1;
  renderGrid($('grid-choice'), $('grid'), { offered, channels: names.sequences, chosen: store.grid }, onGrid);
}

/**
 * Opens files as a study (or a preview), segments it, and shows it. Returns true for a study.
 * `refused`: files of the same drop refused by their header check (`{name, error}`), listed too.
 */
export async function openFiles(files, roles, fresh = files, name = null, refused = []) {
  const { compute, viewer } = store;
  return withBusy(async () => {
    try {
      const label = fresh.length === 1 ? fresh[0].name : `${fresh.length} files`;
      const result = await withProgress(compute, `Reading ${label}`, () => compute.open(files, roles, store.grid));
      const readable = result.files.filter((f) => !f.error);
      if (!result.study && !readable.length) {
        const errs = result.files.map((f) => `${f.name}: ${f.error}`).join(' — ');
        renderFiles(
          $('files'),
          [...store.reports, ...result.files.filter((f) => fresh.some((n) => n.name === f.name))],
          onRole,
        );
        status(errs, { error: true });
        return false;
      }
      Object.assign(store, { files, roles, reports: result.files, explanation: null, mask: null });
      renderFiles($('files'), [...result.files, ...refused], onRole);
      showGrid();
      $('results').hidden = true;
      if (!result.study) {
        store.study = null;
        const p = result.preview;
        const shown =
          p.channels === 1 ? [p.name] : Array.from({ length: p.channels }, (_, i) => `${p.name} — volume ${i + 1}`);
        await showVolume({ dims: p.dims, affine: p.affine, channels: split(p.data, p.dims, p.channels), names: shown });
        const errors = [...result.files, ...refused]
          .filter((f) => f.error && !f.aside)
          .map((f) => `${f.name}: ${f.error}`);
        status([`Showing ${p.name}. ${result.problem}.`, ...errors].join(' — '), { error: errors.length > 0 });
        return false;
      }
      const s = result.study;
      store.study = { ...s, channels: split(s.data, s.dims, s.channels) };
      store.name = name ?? studyName(s.sources);
      await showVolume({
        dims: s.dims,
        affine: s.affine,
        channels: store.study.channels,
        names: names.sequences,
        label: s.label,
      });
      const { mask } = await withProgress(compute, 'Segmenting', () => compute.run('segment'));
      store.mask = mask;
      await viewer.setOverlays({ mask, label: s.label ?? null, classes: names.classes.length });
      const moved = (s.resampled ?? []).map((m) => ` ${m}.`).join('');
      const refusedText = refused.map((f) => ` ${f.name} was not read: ${f.error}.`).join('');
      status(
        `${store.name}: ${s.dims.join('×')} voxels (${s.orientation}), ${found(mask)}.${moved}${nonFiniteText(s.non_finite)}${refusedText} Double-click a voxel (or press Explain) to explain it.`,
        { error: refused.length > 0 },
      );
      return true;
    } catch (e) {
      failed(`Reading the files failed`, e);
      return false;
    }
  });
}

/** The loaded study again (after a model change: its segmentation belonged to the old model). */
export const reopen = () => openFiles(store.files, store.roles, store.files, store.name);

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
  const plan = await store.compute.call('check', {
    name: f.name,
    prefix: prefix.buffer,
    size: f.size,
    imgStart: imgStart?.buffer ?? null,
  });
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

/**
 * New files join those already listed while they do not yet make a study (the user is
 * gathering sequences); once a study is loaded, a new drop starts a new study. A drop of which
 * nothing can be read changes nothing but shows why.
 */
async function dropped(list) {
  if (store.busy) return;
  const { read, refused } = await readFiles(list);
  if (refused.length && !read.length) {
    renderFiles($('files'), [...store.reports, ...refused], onRole);
    status(refused.map((r) => `${r.name}: ${r.error}`).join(' — '), { error: true });
    return;
  }
  if (!read.length) return;
  const fresh = new Set(read.map((f) => f.name));
  const candidate = store.study ? read : [...store.files.filter((f) => !fresh.has(f.name)), ...read];
  await openFiles(candidate, store.study ? {} : store.roles, read, null, refused);
}

/** The files under a dropped entry, as `{file, path}` with the path inside the drop. */
async function walk(entry, prefix) {
  if (entry.isFile) return [{ file: await new Promise((ok, err) => entry.file(ok, err)), path: prefix + entry.name }];
  const reader = entry.createReader();
  const children = [];
  // readEntries hands a folder over in batches, an empty one at the end.
  for (;;) {
    const batch = await new Promise((ok, err) => reader.readEntries(ok, err));
    if (!batch.length) break;
    children.push(...batch);
  }
  return (await Promise.all(children.map((c) => walk(c, `${prefix}${entry.name}/`)))).flat();
}

/** The drop hint and the demo menu follow the model in use. */
export function describeInput() {
  const m = names.model;
  const channels = names.sequences.join(', ');
  const dicom = '; or a DICOM folder (or .zip): its series are matched to the channels by description';
  $('drop-what').textContent = m?.liver
    ? `six NIfTI files, one per sequence (T2, T1 plain, T1 20 s, 60 s, 120 s, 15 min; on any grids: they are resampled onto the finest), or one 4-D file with the six as volumes; optionally a tumour label (0/1)${dicom}`
    : `${names.sequences.length === 1 ? 'one NIfTI file' : `${names.sequences.length} NIfTI files, one per channel of the model`} (${channels}; on any grids: they are resampled onto the finest), or one 4-D file with them as volumes; optionally a label (class indices 0–${names.classes.length - 1})${dicom}`;
  $('load-patient').disabled = !m?.liver;
  $('patient').disabled = !m?.liver;
  $('load-patient').title = m?.liver ? '' : 'the demo patients are liver studies for the bundled model';
}

export function setupFiles() {
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
    // Entries are taken before the first await: the drop's data is gone after it.
    const items = [...(ev.dataTransfer.items ?? [])].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    const files = [...ev.dataTransfer.files];
    let entries = files.map((file) => ({ file, path: file.name }));
    // Folders are walked where the browser hands them over as entries.
    if (items.some((e) => e.isDirectory)) entries = (await Promise.all(items.map((e) => walk(e, '')))).flat();
    // A model (its files, its folder or its .zip) dropped here replaces the model in use.
    if (await isModelDrop(entries)) await loadModelFiles(entries);
    else await dropped(entries.map((e) => e.file));
  });
  $('patient').innerHTML = Array.from(
    { length: names.demoPatients },
    (_, i) => `<option value="${i + 1}">${i + 1}</option>`,
  ).join('');
  $('load-patient').addEventListener('click', async () => {
    if (store.busy) return;
    const i = +$('patient').value;
    try {
      // The same files `seglrp phantoms` writes: six sequences and the label, as a user drops them.
      const files = await withBusy(() =>
        withProgress(store.compute, `Generating demo patient ${i}`, () => store.compute.call('cohort', { i })),
      );
      await openFiles(files, {}, files, `demo patient ${i}`);
    } catch (e) {
      failed(`Demo patient ${i} could not be made`, e);
    }
  });
  $('clear').addEventListener('click', () => {
    if (store.busy) return;
    clearStudy();
    renderFiles($('files'), [], onRole);
    showGrid();
    $('viewer').hidden = true;
    $('results').hidden = true;
    settled();
    status('');
  });
  $('channel').addEventListener('change', () => store.viewer.setSequence(+$('channel').value));
  $('layout').addEventListener('change', () => store.viewer.setLayout($('layout').value));
  describeInput();
}
