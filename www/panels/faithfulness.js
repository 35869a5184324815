// The faithfulness panel: for the explanation shown, region perturbation curves (MoRF/LeRF) of
// its composite's map beside a random map and another method, with AOPC, computed in the worker
// (web.rs faithfulness) with progress; Cancel restarts the worker as for any request.
import { store, withBusy } from '../store.js';
import { names } from '../catalogue.js';
import { status, failed, withProgress, escapeHtml } from '../status.js';
import { drawCurves } from '../charts.js';

const $ = (id) => document.getElementById(id);

/** Steps of each curve, as `seglrp faithfulness`'s default. */
export const STEPS = 20;
/** The method compared by default: gradient × input (Captum's InputXGradient). */
const COMPARED = 'gradient_x_input';

/** The region an explanation covered: its mask, or for a voxel that voxel alone. */
function regionOf(e) {
  if (e.region) return { region: e.region.slice(), cls: e.class ?? null };
  const [nx, ny, nz] = store.study.dims;
  const region = new Uint8Array(nx * ny * nz);
  region[e.voxel[0] + nx * (e.voxel[1] + ny * e.voxel[2])] = 1;
  return { region, cls: e.class };
}

/** The methods measured for explanation `e`: its composite, the one compared, random. */
export const methodsFor = (e, compared) => [...new Set([e.composite, compared, 'random'])];

function show(e, result) {
  drawCurves($('faith-curves'), result.methods, `Region perturbation, ${result.voxels} voxels, ${result.steps} steps`);
  const f = (v) => v.toFixed(3);
  $('faith-table').innerHTML =
    '<tr><th>method</th><th>AOPC MoRF ↑</th><th>AOPC LeRF ↓</th><th>ABPC ↑</th><th>Dice AOPC MoRF ↑</th></tr>' +
    result.methods
      .map(
        (m) =>
          `<tr><td>${escapeHtml(m.method)}</td><td>${f(m.aopc_morf)}</td><td>${f(m.aopc_lerf)}</td>` +
          `<td>${f(m.abpc)}</td><td>${f(m.dice_aopc_morf)}</td></tr>`,
      )
      .join('');
  store.faithfulness = { explanation: e, result };
}

async function measure() {
  const e = store.explanation;
  if (!e || store.busy) return;
  const methods = methodsFor(e, $('faith-compare').value);
  await withBusy(async () => {
    try {
      const { region, cls } = regionOf(e);
      const t0 = performance.now();
      const result = await withProgress(store.compute, `Measuring faithfulness (${methods.join(', ')})`, () =>
        store.compute.run('faithfulness', { region: region.buffer, cls, methods, steps: STEPS }),
      );
      show(e, result);
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      status(`Faithfulness of ${e.composite}'s map measured in ${s} s (${store.backend}).`);
    } catch (err) {
      failed('Measuring faithfulness failed', err);
    }
  });
}

/** The compare menu from the engine's catalogue (after start and each model change). */
export function buildFaithfulnessMenu() {
  $('faith-compare').innerHTML = names.methods
    .filter((m) => m !== 'random')
    .map((m) => `<option value="${m}"${m === COMPARED ? ' selected' : ''}>${m}</option>`)
    .join('');
}

/** A new explanation: the last curves no longer apply. */
export function clearFaithfulness() {
  store.faithfulness = null;
  $('faith-table').innerHTML = '';
  const c = $('faith-curves');
  c.getContext('2d').clearRect(0, 0, c.width, c.height);
}

export function updateFaithfulness() {
  $('faith-run').disabled = !store.explanation || !store.study;
}

export function setupFaithfulness() {
  buildFaithfulnessMenu();
  $('faith-run').addEventListener('click', measure);
}
