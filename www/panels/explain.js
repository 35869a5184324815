// The explain panel: the class, region and composite menus (built from the engine's
// catalogue), a click or the Explain button turned into a relevance map in the worker, and
// the results: the relevance panels (one per channel), the shares as bars and a table.
import { store, withBusy } from '../store.js';
import { names, defaultClass, className } from '../catalogue.js';
import { status, failed, withProgress } from '../status.js';
import { drawBars } from '../charts.js';

const $ = (id) => document.getElementById(id);
const option = (value, text, extra = '') => `<option value="${value}"${extra}>${text}</option>`;

// Regions that follow the crosshair; the others are named by the engine's catalogue.
const CROSSHAIR = ['voxel', 'component'];
const scopeLabel = (name) => names.scopes.find((s) => s.name === name)?.label ?? name;
const againstLabel = () => names.scopes.filter((s) => s.needs === 'label').map((s) => s.name);
// The regions' own words name the liver's "tumour": for another model, the explained class.
const worded = (text, cls) =>
  names.model?.liver ? text : text.replace(/\btumour\b/g, cls == null ? 'foreground' : className(cls));
/** The class menu's choice: an index, or null for all foreground. */
const chosenClass = () => ($('class').value === 'foreground' ? null : +$('class').value);

/** The menus of the model in use (after start and after each model change). */
export function buildMenus() {
  $('class').innerHTML =
    names.classes.map((c, i) => option(i, `${i}: ${c}`, i === defaultClass() ? ' selected' : '')).join('') +
    (names.allForeground ? option('foreground', names.allForeground) : '');
  if (!$('composite').options.length) $('composite').innerHTML = names.composites.map((c) => option(c, c)).join('');
  // Why the menu starts where it does (the engine's first composite is its default).
  $('composite-why').textContent =
    `${names.composites[0]} by default: its maps were the most faithful of the composites over the demo ` +
    'cohort (region perturbation; README, "How faithful is a map?").';
  // Regions that need a label or a drawing start disabled (updateScopes, the drawing menu).
  $('scope').innerHTML = names.scopes
    .map((s) => option(s.name, s.label + (s.needs ? ` (needs a ${s.needs})` : ''), s.needs ? ' disabled' : ''))
    .join('');
  wordScopes();
  return store.viewer.setPanels(names.sequences);
}

/** The region menu in the words of the chosen class ("all predicted liver" for class liver). */
function wordScopes() {
  for (const o of $('scope').options) o.textContent = worded(o.textContent, chosenClass());
}

/** tp/fn/fp compare the prediction with a label: offered only when the study has one. */
export function updateScopes() {
  const labelled = Boolean(store.study?.label);
  for (const v of againstLabel()) {
    const o = document.querySelector(`#scope option[value="${v}"]`);
    o.disabled = !labelled;
    o.textContent = scopeLabel(v) + (labelled ? '' : ' (needs a label)');
  }
  if (!labelled && againstLabel().includes($('scope').value)) $('scope').value = 'all';
  $('explain').disabled = !store.study;
}

/** What an explanation covered, in words (the cohort's region column too). */
export const regionText = (e) =>
  e.scope === 'voxel'
    ? `voxel (${e.voxel.join(', ')})`
    : e.scope === 'component'
      ? worded(`the tumour at (${e.voxel.join(', ')}), ${e.voxels} voxels`, e.class)
      : `${worded(scopeLabel(e.scope), e.class)}, ${e.voxels} voxels`;

/** One explanation in the worker; returns it with what it explained, or null if nothing to do. */
async function explainWith({ voxel, cls, composite, scope }) {
  const where = `voxel (${voxel.join(', ')})`;
  const args = { x: voxel[0], y: voxel[1], z: voxel[2], cls, composite };
  let e;
  if (scope === 'voxel') {
    // All foreground, one voxel: the voxel's own predicted class.
    if (cls == null) {
      const [nx, ny] = store.study.dims;
      args.cls = store.mask[voxel[0] + nx * (voxel[1] + ny * voxel[2])];
    }
    e = await withProgress(store.compute, `Explaining ${where} with ${composite}`, () =>
      store.compute.run('explain', args),
    );
  } else {
    let drawn = null;
    if (scope === 'drawn') {
      drawn = await store.viewer.drawnMask();
      if (!drawn) {
        status('Draw a region first (Draw a region: brush or box), then explain it.', { error: true });
        return null;
      }
    }
    const what = CROSSHAIR.includes(scope) ? `the ${className(cls)} region at ${where}` : scopeLabel(scope);
    e = await withProgress(store.compute, `Explaining ${worded(what, cls)} with ${composite} (two passes)`, () =>
      store.compute.run('explainRegion', { ...args, scope, drawn }),
    );
  }
  e.voxel = e.voxel ?? voxel;
  Object.assign(e, { scope, composite, study: store.name });
  return e;
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

async function showExplanation(e) {
  const channels = names.sequences;
  store.explanation = e;
  $('results').hidden = false;
  $('result-title').textContent =
    `${store.name}: relevance for ${className(e.class)} at ${regionText(e)} (${e.composite})`;
  // No positive relevance anywhere: no shares (they would be zeros that do not sum to 1).
  const pct = (v) => (v == null ? '—' : `${(100 * v).toFixed(1)} %`);
  store.viewer.captions.forEach((cap, c) => {
    cap.textContent = `${channels[c]} — ${e.shares ? pct(e.shares[c]) : 'no positive relevance'}`;
  });
  await store.viewer.showRelevance(e.relevance, e.region);
  store.viewer.moveTo(e.region ? centreOf(e.region, store.study.dims) : e.voxel);
  drawBars($('bars'), channels, e.shares, 'Share of positive relevance per channel');
  $('shares').innerHTML =
    '<tr><th>channel</th><th>share of positive relevance</th><th>signed share</th></tr>' +
    (e.shares
      ? channels
          .map((s, c) => `<tr><td>${s}</td><td>${pct(e.shares[c])}</td><td>${pct(e.signed_shares?.[c])}</td></tr>`)
          .join('')
      : '<tr><td colspan="3">No positive relevance: every voxel\'s relevance is zero or negative, so there are no shares.</td></tr>');
  $('result-figures').textContent =
    e.scope === 'voxel'
      ? `Logit ${e.logit.toFixed(4)}; Σ input relevance ${e.relevance_sum.toFixed(4)}.`
      : `Conservation ${e.conservation.toFixed(3)} (input relevance / explained logits); ${e.left_out} of ${e.voxels} voxels left out (no positive relevance to normalise by).`;
}

/**
 * Explains at voxel `voxel` (the crosshair) with the panel's class, region and composite; a
 * request while busy is queued and runs next. `onExplained(e)` takes each explanation.
 */
export async function explain(voxel, onExplained) {
  if (!store.study) {
    status(`Explaining needs a complete study: ${names.sequences.join(', ')} (see the file list).`, { error: true });
    return;
  }
  if (!voxel) return;
  if (store.busy) {
    store.queued = voxel;
    status('Busy: your request will be explained next.', { busy: true });
    return;
  }
  const cls = chosenClass();
  const composite = $('composite').value;
  const scope = $('scope').value;
  await withBusy(async () => {
    try {
      const e = await explainWith({ voxel, cls, composite, scope });
      if (!e) return;
      await showExplanation(e);
      onExplained(e);
      status(
        scope === 'voxel'
          ? `Voxel (${voxel.join(', ')}), ${composite}: logit ${e.logit.toFixed(4)}, Σ relevance ${e.relevance_sum.toFixed(4)} (${store.backend}).`
          : `Region of ${e.voxels} voxels, ${composite}: Σ M_A ${e.relevance_sum.toFixed(2)} for ${e.voxels - e.left_out} voxels kept, ${e.left_out} left out; conservation ${e.conservation.toFixed(3)} (input relevance / explained logits) (${store.backend}).`,
      );
    } catch (e) {
      failed('Explaining failed', e);
    }
  });
  if (store.queued) {
    const v = store.queued;
    store.queued = null;
    explain(v, onExplained);
  }
}

export function setupExplain({ onExplained }) {
  buildMenus();
  $('explain').addEventListener('click', () => explain(store.viewer.crosshair(), onExplained));
  $('class').addEventListener('change', () => {
    if (names.model?.liver) return;
    const chosen = $('scope').value;
    const disabled = [...$('scope').options].map((o) => o.disabled);
    $('scope').innerHTML = names.scopes
      .map((s, i) =>
        option(
          s.name,
          s.label + (disabled[i] && s.needs ? ` (needs a ${s.needs})` : ''),
          disabled[i] ? ' disabled' : '',
        ),
      )
      .join('');
    wordScopes();
    $('scope').value = chosen;
  });
  $('draw').addEventListener('change', () => {
    store.viewer.setDrawing($('draw').value || null);
    const o = document.querySelector('#scope option[value="drawn"]');
    o.disabled = false;
    o.textContent = scopeLabel('drawn');
    if ($('draw').value) $('scope').value = 'drawn';
  });
  $('clear-drawing').addEventListener('click', () => store.viewer.clearDrawing());
  const display = () => {
    const t = +$('threshold').value;
    $('threshold-label').textContent = `${Math.round(100 * t)} % of max |R|`;
    store.viewer.setDisplay({ threshold: t, opacity: +$('opacity').value });
  };
  $('threshold').addEventListener('input', display);
  $('opacity').addEventListener('input', display);
}
