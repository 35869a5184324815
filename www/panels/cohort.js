// The cohort panel: one line per explained study and region, the parallel-coordinates figure
// of Chlebus et al. 2019 (one axis per channel of the model, in the catalogue's order) with its
// table, and the demo cohort explained on a pool of workers.
import { store, withBusy, settled } from '../store.js';
import { names, className } from '../catalogue.js';
import { status, failed, withProgress, escapeHtml } from '../status.js';
import { drawParallel, colourOf } from '../charts.js';
import { Pool, poolSize } from '../pool.js';
import { regionText } from './explain.js';

const $ = (id) => document.getElementById(id);

/** An explanation (of the page or of a cohort worker) as a line of the cohort. */
export function addToCohort(e) {
  store.cohort.add({
    study: e.study,
    region: regionText(e),
    class: className(e.class),
    composite: e.composite,
    voxels: e.voxels ?? 1,
    left_out: e.left_out ?? 0,
    conservation: e.conservation ?? null,
    shares: e.shares ? Array.from(e.shares) : null,
    note: e.no_shares ?? null,
    non_finite: e.non_finite ?? 0,
  });
}

export function drawCohort() {
  const rows = store.cohort.rows;
  const order = names.plotOrder;
  drawParallel($('cohort-plot'), names.sequences, order, rows);
  $('cohort-table').innerHTML = rows.length
    ? `<tr><th></th><th>study</th><th>region</th><th>composite</th>${order.map((c) => `<th>${escapeHtml(names.sequences[c])}</th>`).join('')}</tr>` +
      rows
        .map(
          (r, i) =>
            `<tr><td><span class="swatch" style="background:${colourOf(i)}"></span></td><td>${escapeHtml(r.study)}</td><td>${escapeHtml(r.region)}</td><td>${r.composite}</td>${r.shares ? order.map((c) => `<td>${(100 * r.shares[c]).toFixed(1)} %</td>`).join('') : `<td colspan="${order.length}">${escapeHtml(r.note ?? 'no positive relevance')}</td>`}</tr>`,
        )
        .join('')
    : '';
  settled();
}

/**
 * The cohort figure of Chlebus et al. 2019: each demo patient generated, segmented and explained over all its
 * predicted tumour (class tumour, the chosen composite), on a pool of workers (pool.js); the
 * lines join the plot in patient order. The loaded study stays as it is. Cancel stops it.
 */
async function runCohort() {
  if (store.busy) return;
  const n = Math.max(1, Math.min(names.demoPatients, +$('cohort-size').value || names.demoPatients));
  const composite = $('composite').value;
  const asked = +new URLSearchParams(location.search).get('workers') || null;
  const cores = navigator.hardwareConcurrency || 4;
  const size = Math.min(
    n,
    poolSize(store.backend, { cores, memoryGB: navigator.deviceMemory ?? null, asked, threads: store.compute.threads }),
  );
  const run = { cancelled: false, pool: new Pool(store.compute, size) };
  store.cohortRun = run;
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
      await withProgress(store.compute, `Starting ${size} cohort worker${size > 1 ? 's' : ''}`, () =>
        run.pool.start({ cores }),
      );
      await withProgress(store.compute, line, () =>
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
      store.cohortRun = null;
    }
  });
}

/** The demo cohort is the bundled model's: offered only while a liver model is in use. */
export function updateCohort() {
  const liver = Boolean(names.model?.liver);
  $('run-cohort').disabled = !liver;
  $('run-cohort').title = liver ? '' : 'the demo cohort is of liver studies, for a model of the six sequences';
  $('save-csv').disabled = !store.cohort.rows.length;
  $('save-plot').disabled = !store.cohort.rows.length;
}

export function setupCohort() {
  $('cohort-size').max = names.demoPatients;
  $('cohort-size').value = names.demoPatients;
  $('run-cohort').addEventListener('click', runCohort);
  $('clear-cohort').addEventListener('click', () => {
    store.cohort.clear();
    drawCohort();
  });
}
