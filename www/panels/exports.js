// Exports: the segmentation and the relevance maps as NIfTI (on the study's grid, with its
// affine, or resampled onto the grid of one of the study's files), the panels, the bar chart and the cohort plot as PNG, the cohort as CSV. Files are
// handed to the browser as downloads: nothing is sent anywhere.
import { store } from '../store.js';
import { status, failed, escapeHtml } from '../status.js';
import { pngOf } from '../charts.js';

const $ = (id) => document.getElementById(id);

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
    const { bytes } = await store.compute.call(op, args);
    download(bytes, name, 'application/gzip');
  } catch (e) {
    failed(`Saving ${name} failed`, e);
  }
}

const fileStem = () => (store.name ?? 'study').replace(/[^\w.-]+/g, '_');
/** A file resampled onto an input's grid says so in its name: `_on_<file stem>`. */
const gridSuffix = () =>
  onto()
    ? `_on_${onto()
        .replace(/\.(nii|hdr|img)(\.gz)?$/i, '')
        .replace(/[^\w.-]+/g, '_')}`
    : '';

/** The grid exports take: '' (the study's) or an input file's name. */
const onto = () => $('export-grid').value;

export function updateExports() {
  $('save-seg').disabled = !store.mask;
  $('save-rel').disabled = !store.explanation;
  // The menu follows the loaded study's files (kept while the same study stays loaded).
  const grids = store.study?.grids ?? [];
  const offered = ['', ...grids];
  const shown = [...$('export-grid').options].map((o) => o.value);
  if (shown.join('\n') !== offered.join('\n')) {
    const chosen = offered.includes(onto()) ? onto() : '';
    $('export-grid').innerHTML = offered
      .map((g) => `<option value="${escapeHtml(g)}">${escapeHtml(g || "the study's grid")}</option>`)
      .join('');
    $('export-grid').value = chosen;
  }
  $('export-grid').disabled = !store.study;
}

export function setupExports() {
  $('save-seg').addEventListener('click', () =>
    save('exportSegmentation', { mask: store.mask, onto: onto() }, `${fileStem()}_segmentation${gridSuffix()}.nii.gz`),
  );
  $('save-rel').addEventListener('click', () => {
    const e = store.explanation;
    const [x, y, z] = e.voxel;
    save(
      'exportRelevance',
      { relevance: e.relevance, onto: onto() },
      `${fileStem()}_relevance_${e.scope}_${x}_${y}_${z}${gridSuffix()}.nii.gz`,
    );
  });
  $('save-figure').addEventListener('click', async () =>
    download(await store.viewer.figurePng(), `${fileStem()}_relevance_panels.png`),
  );
  $('save-bars').addEventListener('click', async () => download(await pngOf($('bars')), `${fileStem()}_shares.png`));
  $('save-plot').addEventListener('click', async () =>
    download(await pngOf($('cohort-plot')), 'cohort_relevance_parallel.png'),
  );
  $('save-csv').addEventListener('click', () =>
    download(store.cohort.csv(), 'cohort_relevance_shares.csv', 'text/csv'),
  );
}
