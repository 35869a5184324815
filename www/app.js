// The page, wired: the compute worker (compute.js; all computing happens there), the viewer
// (viewer.js; all viewing in NiiVue), the declared store (store.js) and one module per panel
// (panels/): files, model, explain, cohort, exports. Everything the menus offer comes from the
// engine's catalogue (catalogue.js), which follows the model in use.
import { Compute } from './compute.js';
import { names, setNames } from './catalogue.js';
import { store, onSettled } from './store.js';
import { status } from './status.js';
import { Viewer } from './viewer.js';
import { Cohort } from './cohort.js';
import { setupFiles, describeInput, reopen } from './panels/files.js';
import { setupModel, showCard } from './panels/model.js';
import { setupExplain, buildMenus, updateScopes, explain } from './panels/explain.js';
import { setupCohort, drawCohort, addToCohort, updateCohort } from './panels/cohort.js';
import { setupExports, updateExports } from './panels/exports.js';
import {
  setupFaithfulness,
  buildFaithfulnessMenu,
  clearFaithfulness,
  updateFaithfulness,
} from './panels/faithfulness.js';

const $ = (id) => document.getElementById(id);
// Read by the end-to-end test; also handy in the console.
window.__seglrp = store;

const compute = new Compute(({ backend, why, limits }) => {
  $('backend').textContent = backend;
  const buffer = limits ? `; largest GPU buffer ${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB` : '';
  $('backend').title = `where the network runs: ${why ?? backend}${buffer}`;
  Object.assign(store, { backend, backendWhy: why ?? null });
});
compute.ready.catch((e) => status(`The engine could not start: ${e.message}`, { error: true }));
store.compute = compute;
await compute.ready.catch(() => {});
setNames(compute.catalogue ?? {});
store.model = names.model;

const cohortOf = () => new Cohort(names.model?.liver ? null : names.sequences);
store.cohort = cohortOf();

/** A new explanation joins the cohort (with the NaN/Inf voxels its study had set to 0). */
const onExplained = (e) => {
  clearFaithfulness();
  addToCohort({ ...e, non_finite: (store.study?.non_finite ?? []).reduce((a, b) => a + b, 0) });
  drawCohort();
};

store.viewer = new Viewer($('main'), $('panels'), {
  onPick: (v) => explain(v, onExplained),
  onMove: (v) => {
    if (!v || !store.view) return;
    const i = v[0] + store.view.dims[0] * (v[1] + store.view.dims[1] * v[2]);
    const c = store.mask?.[i];
    const what = store.mask ? `, predicted ${names.classes[c] ?? `class ${c}`}` : '';
    $('location').textContent = `crosshair: voxel (${v.join(', ')})${what}`;
  },
});
store.viewer.ready.catch((e) => status(`The viewer could not start (it needs WebGL 2): ${e.message}`, { error: true }));

// Buttons follow the state after every piece of busy work.
onSettled(() => {
  updateScopes();
  updateExports();
  updateCohort();
  updateFaithfulness();
});

setupFiles();
setupModel({
  // What follows from the model: the card, the drop hint, the menus and panels, the cohort.
  onModel: async () => {
    showCard();
    describeInput();
    await buildMenus();
    buildFaithfulnessMenu();
    store.cohort = cohortOf();
    drawCohort();
  },
  reopen,
});
setupExplain({ onExplained });
setupCohort();
setupExports();
setupFaithfulness();
drawCohort();

$('cancel').addEventListener('click', async () => {
  store.queued = null;
  if (store.cohortRun) {
    store.cohortRun.cancelled = true;
    store.cohortRun.pool.close();
  }
  status('Cancelling…');
  await compute.restart();
  status('Cancelled.');
});

// Offline after the first visit: the service worker keeps the page, the engine and NiiVue.
if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  navigator.serviceWorker.register('./sw.js').catch((e) => console.warn(`offline use unavailable: ${e.message}`));
}
