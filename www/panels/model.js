// The model panel: which network explains the study, its card (channels, classes, the
// preprocessing it expects, where each came from), and the user's own model dropped or chosen
// (an nnU-Net or MONAI model folder, its files or its .zip; an .onnx file; SegLRP U-Net
// safetensors with its .json). A model that cannot be read is refused in words and the one in
// use stays.
import { store, withBusy } from '../store.js';
import { names, setNames } from '../catalogue.js';
import { status, failed, withProgress, escapeHtml } from '../status.js';

const $ = (id) => document.getElementById(id);
const BUNDLED = 'bundled liver U-Net';

const scheme = (n) =>
  ({
    ZScore: n.mask ? 'z-score over the non-zero mask' : 'z-score',
    Ct: `CT: clipped to ${n.lower}…${n.upper}, then (x − ${n.mean}) / ${n.std}`,
    None: 'none',
    RescaleTo01: 'rescaled to 0…1',
    Body: 'z-score over the body',
    Unknown: `not stated (${n.note})`,
  })[n.scheme] ?? n.scheme;

/** The model's name and card, as the model panel shows them. */
export function showCard() {
  const m = names.model;
  if (!m) return;
  const c = m.card;
  $('model-name').textContent = `${m.name} (${c.architecture}, ${c.parameters.toLocaleString('en')} parameters)`;
  $('model-bundled').hidden = m.name === BUNDLED;
  const xyz = (v, unit) => (v ? `${v.join(' × ')} ${unit}` : 'not stated');
  $('model-card').innerHTML =
    `<tr><th>input channels</th><td>${c.channels.map((ch, i) => `${i}: ${escapeHtml(ch.name)} (${escapeHtml(scheme(ch.normalisation))})`).join('<br>')}</td></tr>` +
    `<tr><th>classes</th><td>${c.classes.map((k, i) => `${i}: ${escapeHtml(k)}`).join(', ')}</td></tr>` +
    `<tr><th>target spacing</th><td>${xyz(c.target_spacing, 'mm')}</td></tr>` +
    `<tr><th>patch size</th><td>${xyz(c.patch_size, 'voxels')}</td></tr>` +
    `<tr><th>receptive radius</th><td>${c.receptive_radius.join(' × ')} voxels</td></tr>` +
    `<tr><th>from</th><td>${c.sources.map(escapeHtml).join('<br>')}</td></tr>`;
  const card = m.unstated ? 'as the card says (it does not: choose one)' : "as the model's card says";
  $('normalisation').innerHTML = [['', card], ...names.normalisations.map((n) => [n, n])]
    .map(([v, t]) => `<option value="${v}"${v === (m.normalisation ?? '') ? ' selected' : ''}>${t}</option>`)
    .join('');
  $('normalisation').classList.toggle('warning', m.unstated && !m.normalisation);
  // A model whose card does not say how its input is normalised: the menu is where to say it.
  if (m.unstated && !m.normalisation) $('model-card').closest('details').open = true;
}

/**
 * Loads a model (`load()` returns the engine's new catalogue), rebuilds what follows from it
 * (`onModel`), and opens the study again with it (`reopen`).
 */
async function changeModel(load, label, { onModel, reopen }) {
  const loaded = await withBusy(async () => {
    try {
      const catalogue = await withProgress(store.compute, `Loading the model ${label}`, load);
      setNames(catalogue);
      return true;
    } catch (e) {
      failed(`The model ${label} was not loaded (the previous one stays)`, e);
      return false;
    }
  });
  if (!loaded) return;
  // The engine dropped the study with the old model: so does the page, until it is reopened.
  Object.assign(store, { model: names.model, grid: '', study: null, mask: null, explanation: null });
  $('results').hidden = true;
  await onModel();
  const c = names.model.card;
  const what = `Model ${names.model.name} loaded: ${c.channels.length} channel${c.channels.length > 1 ? 's' : ''} (${names.sequences.join(', ')}), ${c.classes.length} classes.`;
  // The loaded study's segmentation belonged to the old model: open it again.
  if (store.files.length) {
    const ok = await reopen();
    if (!ok && !store.study) status(`${what} ${$('status').textContent}`, { error: true });
  } else status(`${what} Drop its study.`);
}

/** Files a model may need; the rest of a model folder (validation outputs, logs) is not read. */
export const isModelFile = (name) => /\.(json|pth|pt|safetensors|onnx|zip)$/i.test(name);

/**
 * Whether a drop is a model rather than a study (NIfTI or DICOM files): it holds weights, a model
 * folder's description, or a .zip that holds either (a .zip of DICOM series is a study; the
 * engine looks inside). `entries`: `{file, path}`, paths inside a dropped folder.
 */
export async function isModelDrop(entries) {
  if (entries.some(({ path }) => /(\.(pth|pt|safetensors|onnx)|(^|\/)(plans|inference|network)\.json)$/i.test(path)))
    return true;
  for (const { file } of entries.filter((e) => /\.zip$/i.test(e.path))) {
    const bytes = await file.arrayBuffer();
    if ((await store.compute.call('zipKind', { bytes })) === 'model') return true;
  }
  return false;
}

let handlers = null;

/**
 * Loads the model in `entries` (`{file, path}`: path = the name within a dropped or chosen
 * folder). Only the files a model may need are read.
 */
export async function loadModelFiles(entries) {
  if (store.busy || !entries.length || !handlers) return;
  const wanted = entries.filter(({ path }) => isModelFile(path));
  if (!wanted.length) {
    status(`${entries.map((e) => e.path).join(', ')}: no model files (.pth, .json, .onnx, .safetensors, .zip)`, {
      error: true,
    });
    return;
  }
  const read = await Promise.all(
    wanted.map(async ({ file, path }) => ({ name: path, bytes: new Uint8Array(await file.arrayBuffer()) })),
  );
  const top = wanted.find((e) => e.path.includes('/'))?.path.split('/')[0];
  const main = top ?? (wanted.find((e) => !/\.json$/i.test(e.path)) ?? wanted[0]).path;
  await changeModel(() => store.compute.loadModel(read), main, handlers);
}

export function setupModel({ onModel, reopen }) {
  handlers = { onModel, reopen };
  showCard();
  for (const id of ['model-file', 'model-folder']) {
    $(id).addEventListener('change', async (ev) => {
      const files = [...ev.target.files];
      ev.target.value = '';
      await loadModelFiles(files.map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    });
  }
  $('normalisation').addEventListener('change', () => {
    if (store.busy) return;
    const name = $('normalisation').value;
    changeModel(() => store.compute.setNormalisation(name), names.model.name, { onModel, reopen });
  });
  $('model-bundled').addEventListener('click', () => {
    if (!store.busy) changeModel(() => store.compute.loadModel(null), BUNDLED, { onModel, reopen });
  });
}
