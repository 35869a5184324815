// The model panel: which network explains the study, its card (channels, classes, the
// preprocessing it expects, where each came from), and the user's own model dropped or chosen
// (an .onnx file, or SegLRP U-Net safetensors with its .json). A model that cannot be read is
// refused in words and the one in use stays.
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

export function setupModel({ onModel, reopen }) {
  showCard();
  $('model-file').addEventListener('change', async (ev) => {
    const files = [...ev.target.files];
    ev.target.value = '';
    if (store.busy || !files.length) return;
    const read = await Promise.all(
      files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })),
    );
    const main = files.find((f) => !/\.json$/i.test(f.name)) ?? files[0];
    await changeModel(() => store.compute.loadModel(read), main.name, { onModel, reopen });
  });
  $('normalisation').addEventListener('change', () => {
    if (store.busy) return;
    const name = $('normalisation').value;
    changeModel(() => store.compute.setNormalisation(name), names.model.name, { onModel, reopen });
  });
  $('model-bundled').addEventListener('click', () => {
    if (!store.busy) changeModel(() => store.compute.loadModel(null), BUNDLED, { onModel, reopen });
  });
}
