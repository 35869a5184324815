// End-to-end: the real page in headless Chromium (Playwright), against the native engine.
// Screenshots and the page's exports are kept in SEGLRP_ARTEFACTS (default target/e2e-artefacts).
//   1. WebGPU on (SwiftShader): six sequence files and a label of demo patient PATIENT (written
//      by `seglrp sample --dir`) through the file input, one of them misnamed so that the user
//      must assign it in the file list; the bundled model's mask equals the native one; the
//      same patient generated in the page (demo menu) gives the same mask. (LRP on WebGPU is
//      compared with the CPU by the wasm-bindgen tests: SwiftShader takes minutes per click
//      at this size.)
//      The GPU limit is enforced (a too-big study refused in words), and a lost GPU
//      (device.destroy()) moves the page to the CPU, which redoes the click with the study kept.
//   2. WebGPU off: the page must fall back to the CPU by itself; the demo menu's patient gives
//      the same mask as WebGPU did; real NIfTI files from the test data are dropped one by one
//      (each is shown, or its error); hostile files (a huge file judged by its first MiB, NaN
//      sequences); then the 4-D sample arrives through a drop event (same
//      mask); click a predicted tumour voxel, compare the six relevance maps with
//      `seglrp explain`; save the relevance and the segmentation and read them back with
//      `seglrp info`; another composite; a tumour region; models of one's own (refused in
//      words when they do not fit; the bundled weights as a file give the same mask); a box drawn
//      in NiiVue explained (= `seglrp explain --mask`); the demo cohort's parallel coordinates,
//      CSV and PNG exports read back; the page reloaded offline (service worker).
// Both runs record every request: all are same-origin static assets, and after load only
// assets already fetched at load are fetched again. No page error may be logged.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { serve } from '../scripts/serve.mjs';
import { niftiBytes } from '../www/nifti-bytes.js';

const BIN = process.env.SEGLRP_BIN;
// The test venv's Python (npm test sets it): exports a network to ONNX for the page to read.
const PYTHON = process.env.SEGLRP_PYTHON || 'python3';
assert.ok(BIN && fs.existsSync(BIN), 'set SEGLRP_BIN to the native seglrp binary');
const DATA = process.env.SEGLRP_TESTDATA;
assert.ok(DATA && fs.existsSync(DATA), 'set SEGLRP_TESTDATA (scripts/lib.sh ensure_test_data)');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'seglrp-e2e-'));
const ARTEFACTS =
  process.env.SEGLRP_ARTEFACTS ||
  path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'target', 'e2e-artefacts');
fs.mkdirSync(ARTEFACTS, { recursive: true });
const shot = async (page, name) => {
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(ARTEFACTS, `${name}.png`), fullPage: true });
};
// A demo patient with a tumour large enough for a region explanation.
const PATIENT = '13';
const sample = path.join(tmp, 'sample.nii.gz');
execFileSync(BIN, ['sample', '--patient', PATIENT, '--out', sample]);
const studyDir = path.join(tmp, 'patient');
execFileSync(BIN, ['sample', '--patient', PATIENT, '--dir', studyDir]);
const nativeMask = (() => {
  const seg = path.join(tmp, 'native-segmentation.nii.gz');
  execFileSync(BIN, ['explain', sample, '--voxel', '0,0,0', '--segmentation', seg], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return Array.from(nativeInfo(seg).values);
})();
const masks = {};
// A name the guesser cannot place: the user assigns it in the page.
fs.renameSync(path.join(studyDir, 't1_60s.nii.gz'), path.join(studyDir, 'series_7.nii.gz'));

const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
// The same page from a server without the cross-origin isolation headers (a plain static host).
const plainServer = await serve(0, '127.0.0.1', { isolated: false });
const plainOrigin = `http://127.0.0.1:${plainServer.address().port}`;
const BASE_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-swiftshader',
];

function nativeRelevance(voxel, cls, composite = 'Epsilon', scope = 'voxel', mask = null) {
  const raw = path.join(tmp, `r-${voxel.join('-')}-${cls}-${composite}-${scope}.f32`);
  const region = scope === 'voxel' ? [] : scope === 'drawn' ? ['--mask', mask] : ['--region', scope];
  // Regions against the label (tp/fn/fp) need the label file beside the 4-D study.
  const files = ['tp', 'fn', 'fp'].includes(scope) ? [sample, path.join(studyDir, 'label.nii.gz')] : [sample];
  const out = JSON.parse(
    execFileSync(
      BIN,
      [
        'explain',
        ...files,
        '--voxel',
        voxel.join(','),
        '--class',
        String(cls),
        '--composite',
        composite,
        ...region,
        '--raw',
        raw,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  const buf = fs.readFileSync(raw);
  return { summary: out, relevance: new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
}

/** `seglrp info --json --values` of one file: its description and its values. */
function nativeInfo(file) {
  const dir = fs.mkdtempSync(path.join(tmp, 'info-'));
  const [r] = JSON.parse(execFileSync(BIN, ['info', '--json', '--values', dir, file]));
  // Values are written under the entry's name (a DICOM series' is its description).
  const buf = fs.readFileSync(path.join(dir, `${path.basename(r.file)}.f32`));
  return { ...r, values: new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
}

const statusText = (page) => page.textContent('#status');
const waitStatus = (page, re, timeout = 300_000) =>
  page.waitForFunction(
    (src) =>
      new RegExp(src).test(document.getElementById('status').textContent) ||
      document.getElementById('status').classList.contains('error'),
    re.source,
    { timeout },
  );

async function dropFiles(page, files) {
  const payload = files.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f).toString('base64') }));
  await page.evaluate((list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))], f.name));
    document
      .getElementById('drop')
      .dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, payload);
}

/** Six sequences + label through the chooser; the unplaceable file is assigned by hand. */
async function sixFilesWithAssignment(page, name) {
  await page.setInputFiles(
    '#file',
    fs.readdirSync(studyDir).map((f) => path.join(studyDir, f)),
  );
  await waitStatus(page, /incomplete/);
  assert.match(await statusText(page), /no file for T1 60 s/, `${name}: the missing sequence is named`);
  assert.equal(await page.locator('#files tr').count(), 8, `${name}: seven files listed`);
  assert.equal(await page.locator('select[data-file="t1_15min.nii.gz"]').inputValue(), 'T1 15 min');
  assert.equal(await page.locator('select[data-file="label.nii.gz"]').inputValue(), 'label');
  await page.selectOption('select[data-file="series_7.nii.gz"]', 'T1 60 s');
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /Double-click/, `${name}: after assigning: ${await statusText(page)}`);
  const label = await page.evaluate(() => window.__seglrp.study.label?.reduce((n, v) => n + v, 0));
  assert.ok(label > 50, `${name}: the label file is loaded (${label} tumour voxels)`);
  await sameMask(page, name, 'six files');
}

/** The page's mask equals the native engine's, and every other mask of this patient. */
async function sameMask(page, name, how) {
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  const tumour = mask.reduce((n, v) => n + v, 0);
  assert.ok(tumour > 50, `${name}, ${how}: ${tumour} predicted tumour voxels`);
  const differ = mask.filter((v, i) => v !== nativeMask[i]).length;
  assert.equal(differ, 0, `${name}, ${how}: ${differ} voxels differ from the native segmentation`);
  for (const [other, m] of Object.entries(masks)) {
    assert.deepEqual(mask, m, `${name}, ${how}: mask differs from ${other}`);
  }
  masks[`${name}, ${how}`] = mask;
  return tumour;
}

/** The demo menu: the patient generated in the page (wasm), segmented by the bundled model. */
async function demoPatient(page, name) {
  await page.selectOption('#patient', PATIENT);
  await page.click('#load-patient');
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /Double-click/, `${name}: demo patient: ${await statusText(page)}`);
  assert.equal(
    await page.locator('#files tr').count(),
    8,
    `${name}: the demo patient arrives as six sequences and a label`,
  );
  return sameMask(page, name, 'demo menu');
}

/** Real files, one at a time: each is shown (with why it is not a study) or refused in words. */
async function realFilesOneByOne(page, name) {
  const cases = [
    ['nibabel/tests/data/anatomical.nii', /Showing anatomical\.nii/],
    ['nibabel/tests/data/example_nifti2.nii.gz', /example_nifti2\.nii\.gz has 2 volume\(s\)/],
    ['dipy/data/files/small_64D.nii', /small_64D\.nii has 65 volume\(s\)/],
    ['nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz', /Showing mni_icbm152/],
    ['nibabel/tests/data/nifti1.hdr', /nifti1\.hdr: .*give its \.img file/],
  ];
  for (const [file, want] of cases) {
    await page.click('#clear');
    await dropFiles(page, [path.join(DATA, file)]);
    await page.waitForFunction(
      (base) =>
        document.getElementById('status').textContent.includes(base) &&
        !document.getElementById('cancel').checkVisibility(),
      path.basename(file),
      { timeout: 60_000 },
    );
    const text = await statusText(page);
    assert.match(text, want, `${name}: ${file}: ${text}`);
    const readable = !/hdr$/.test(file);
    if (readable) {
      const dims = await page.evaluate(() => window.__seglrp.view.dims);
      assert.deepEqual(
        dims,
        nativeInfo(path.join(DATA, file)).info.dims.slice(0, 3),
        `${name}: ${file} shown at its size`,
      );
    }
  }
  await page.click('#clear');
}

/**
 * Hostile files as a user drops them: a 2.5 GB sparse file whose header claims 8 GiB is refused
 * after the page has read its first MiB (every Blob read is recorded); a study whose T1 20 s is
 * all NaN is refused naming that file; with 100 NaN voxels it loads and says they were set to 0.
 */
async function hostileFiles(page, name) {
  await page.evaluate(() => {
    const read = Blob.prototype.arrayBuffer;
    window.__reads = [];
    Blob.prototype.arrayBuffer = function () {
      window.__reads.push(this.size);
      return read.call(this);
    };
  });
  const huge = path.join(tmp, 'claims-8gib.nii');
  const head = Buffer.from(
    niftiBytes(
      new Float32Array(8),
      [2, 2, 2],
      [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ],
    ),
  );
  [2048, 2048, 512].forEach((d, i) => head.writeInt16LE(d, 42 + 2 * i));
  fs.writeFileSync(huge, head);
  fs.truncateSync(huge, 2_500_000_000); // sparse: no disk used
  await page.setInputFiles('#file', huge);
  await page.waitForFunction(() => document.getElementById('status').classList.contains('error'), null, {
    timeout: 60_000,
  });
  const text = await statusText(page);
  assert.match(
    text,
    /claims-8gib\.nii: the image has 2147483648 voxel values \(8\.00 GiB stored\); this tool accepts at most/,
    `${name}: ${text}`,
  );
  const reads = await page.evaluate(() => window.__reads);
  assert.ok(
    reads.length > 0 && Math.max(...reads) <= 1 << 20,
    `${name}: the page read ${reads} bytes of the 2.5 GB file`,
  );
  assert.match(
    await page.textContent('#files'),
    /claims-8gib\.nii.*accepts at most/,
    `${name}: the refused file is listed with its reason`,
  );
  fs.rmSync(huge);
  await page.click('#clear');

  // The six sequences of the demo patient, T1 20 s made NaN (all of it, then 100 voxels).
  const nanDir = path.join(tmp, 'nan-study');
  fs.mkdirSync(nanDir, { recursive: true });
  const files = fs.readdirSync(studyDir).filter((f) => f !== 'label.nii.gz');
  for (const f of files)
    fs.copyFileSync(path.join(studyDir, f), path.join(nanDir, f === 'series_7.nii.gz' ? 't1_60s.nii.gz' : f));
  const t1 = nativeInfo(path.join(studyDir, 't1_20s.nii.gz'));
  const withNan = (n) => {
    const v = Float32Array.from(t1.values);
    v.fill(NaN, 0, n);
    fs.rmSync(path.join(nanDir, 't1_20s.nii.gz'), { force: true });
    fs.writeFileSync(path.join(nanDir, 't1_20s.nii'), Buffer.from(niftiBytes(v, t1.info.dims, t1.info.affine)));
    return fs.readdirSync(nanDir).map((f) => path.join(nanDir, f));
  };
  await page.setInputFiles('#file', withNan(t1.values.length));
  await waitStatus(page, /cannot be segmented/);
  assert.match(
    await statusText(page),
    /t1_20s\.nii \(T1 20 s\) cannot be segmented or explained: all its \d+ voxels are NaN or infinite/,
    `${name}: ${await statusText(page)}`,
  );
  assert.equal(await page.evaluate(() => window.__seglrp.study), null, `${name}: no study from an all-NaN sequence`);
  await page.click('#clear');
  await page.setInputFiles('#file', withNan(100));
  await waitStatus(page, /Double-click/);
  assert.match(
    await statusText(page),
    /NaN or infinite voxels set to 0: 100 in T1 20 s/,
    `${name}: ${await statusText(page)}`,
  );
  await page.click('#clear');
  return 'a 2.5 GB file claiming 8 GiB refused after reading ≤ 1 MiB of it; an all-NaN sequence refused by name, 100 NaN voxels counted';
}

/** The predicted tumour voxel nearest the centroid of the slice with the most tumour. */
const tumourVoxel = (page) =>
  page.evaluate(() => {
    const {
      mask,
      view: { dims },
    } = window.__seglrp;
    const [nx, ny, nz] = dims;
    let best = 0,
      bz = 0;
    for (let z = 0; z < nz; z++) {
      let n = 0;
      for (let i = z * nx * ny; i < (z + 1) * nx * ny; i++) n += mask[i];
      if (n > best) {
        best = n;
        bz = z;
      }
    }
    let sx = 0,
      sy = 0;
    for (let i = 0; i < nx * ny; i++)
      if (mask[bz * nx * ny + i]) {
        sx += i % nx;
        sy += Math.floor(i / nx);
      }
    const [cx, cy] = [sx / best, sy / best];
    let pick = null,
      dmin = Infinity;
    for (let i = 0; i < nx * ny; i++) {
      if (!mask[bz * nx * ny + i]) continue;
      const d = ((i % nx) - cx) ** 2 + (Math.floor(i / nx) - cy) ** 2;
      if (d < dmin) {
        dmin = d;
        pick = [i % nx, Math.floor(i / nx)];
      }
    }
    return [...pick, bz];
  });

/** Page coordinates of voxel `v` in the main view's axial tile, with the slices moved there. */
async function axialPoint(page, v) {
  // Mouse coordinates are the viewport's: the main view must be on screen.
  await page.locator('#main').scrollIntoViewIfNeeded();
  const pt = await page.evaluate((v) => {
    window.__seglrp.viewer.moveTo(v);
    return window.__seglrp.viewer.axialPoint(v);
  }, v);
  assert.ok(pt, `voxel ${v} is on the axial tile`);
  const box = await page.locator('#main').boundingBox();
  return { x: box.x + pt.x, y: box.y + pt.y };
}

/** A box drawn with NiiVue's rectangle pen, 7 × 7 voxels around `c` on its slice. */
async function drawBox(page, name, c) {
  await page.selectOption('#draw', 'box');
  const [x, y, z] = c;
  const from = await axialPoint(page, [x - 3, y - 3, z]);
  const to = await axialPoint(page, [x + 3, y + 3, z]);
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(to.x, to.y, { steps: 8 });
  await page.mouse.up();
  await page.selectOption('#draw', '');
  const drawn = await page.evaluate(async () => Array.from((await window.__seglrp.viewer.drawnMask()) ?? []));
  const [nx, ny] = await page.evaluate(() => window.__seglrp.view.dims);
  const voxels = drawn.flatMap((v, i) => (v ? [[i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]] : []));
  assert.ok(voxels.length >= 36, `${name}: the box has ${voxels.length} voxels`);
  for (const [vx, vy, vz] of voxels) {
    assert.ok(
      vz === z && Math.abs(vx - x) <= 3 && Math.abs(vy - y) <= 3,
      `${name}: drawn voxel (${vx}, ${vy}, ${vz}) outside the box around (${c})`,
    );
  }
  const file = path.join(tmp, 'drawn.nii');
  const info = nativeInfo(sample).info;
  fs.writeFileSync(file, Buffer.from(niftiBytes(Uint8Array.from(drawn), info.dims.slice(0, 3), info.affine)));
  return file;
}

/**
 * Explains in the page (a double click on the tumour for a voxel or component, the Explain
 * button otherwise) and compares the six maps with the native engine's.
 */
/** Waits until the page shows an explanation and is idle, or says why it cannot. */
async function explanationSettled(page, timeout) {
  await page.waitForFunction(
    () =>
      (window.__seglrp.explanation && !window.__seglrp.busy) ||
      document.getElementById('status').classList.contains('error'),
    null,
    { timeout },
  );
}

/** max |got − want| and max |want|, for relevance maps compared voxel by voxel. */
function maxDifference(got, want) {
  let diff = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { diff, scale };
}

async function explainAndCompare(page, name, composite = 'EpsilonGammaBox', scope = 'voxel', mask = null) {
  await page.selectOption('#composite', composite);
  await page.selectOption('#scope', scope);
  await page.evaluate(() => {
    window.__seglrp.explanation = null;
  });
  const [x, y, z] = await tumourVoxel(page);
  if (scope === 'voxel' || scope === 'component') {
    const at = await axialPoint(page, [x, y, z]);
    await page.mouse.dblclick(at.x, at.y);
  } else {
    await page.click('#explain');
  }
  await explanationSettled(page, 600_000);
  assert.ok(await page.evaluate(() => Boolean(window.__seglrp.explanation)), `${name}: ${await statusText(page)}`);
  const got = await page.evaluate(() => {
    const e = window.__seglrp.explanation;
    return {
      voxel: e.voxel,
      cls: e.class,
      logit: e.logit,
      voxels: e.voxels,
      shares: e.shares,
      relevance: Array.from(e.relevance),
    };
  });
  if (scope === 'voxel' || scope === 'component')
    assert.deepEqual(got.voxel, [x, y, z], `${name}: the double-clicked voxel is explained`);
  assert.equal(
    await page.locator('#panels figure:not([hidden])').count(),
    6,
    `${name}: one relevance panel per sequence`,
  );
  const want = nativeRelevance(got.voxel, got.cls, composite, scope, mask);
  assert.equal(got.relevance.length, want.relevance.length);
  const { diff, scale } = maxDifference(got.relevance, want.relevance);
  assert.ok(scale > 0, 'relevance is not all zero');
  assert.ok(
    diff <= 1e-4 * scale,
    `${name}, ${composite}: page vs native relevance max diff ${diff} (max |R| ${scale})`,
  );
  const sum = got.shares.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-5, `${name}: the six shares sum to ${sum}`);
  if (scope === 'voxel') {
    assert.ok(Math.abs(got.logit - want.summary.explanation.logit) <= 1e-4 * Math.max(1, Math.abs(got.logit)));
  } else {
    assert.equal(got.voxels, want.summary.explanation.voxels, `${name}: region size`);
    if (scope !== 'drawn') assert.ok(got.voxels > 50, `${name}: the tumour region has ${got.voxels} voxels`);
  }
  // The shares shown under the panels are the ones computed from these maps.
  const caption = await page.locator('#panels figcaption').first().textContent();
  assert.ok(caption.includes(`${(100 * got.shares[0]).toFixed(1)} %`), caption);
  await shot(page, `${name.replace(/\W+/g, '_')}-${composite}-${scope}`);
  return { got, diff, scale };
}

/**
 * The faithfulness panel for the explanation shown (a tumour component): the curves of its
 * composite, gradient × input and a random map, with the AOPC of `seglrp faithfulness` for the
 * same region, methods and steps; the seconds it took are reported (a figure, not a test).
 */
async function faithfulnessPanel(page, name, explained, composite) {
  await page.selectOption('#faith-compare', 'gradient_x_input');
  const t0 = Date.now();
  await page.click('#faith-run');
  await page.waitForFunction(
    () => window.__seglrp.faithfulness || document.getElementById('status').classList.contains('error'),
    null,
    { timeout: 600_000 },
  );
  const seconds = (Date.now() - t0) / 1000;
  const got = await page.evaluate(() => window.__seglrp.faithfulness?.result);
  assert.ok(got, `${name}: faithfulness: ${await statusText(page)}`);
  assert.deepEqual(
    got.methods.map((m) => m.method),
    [composite, 'gradient_x_input', 'random'],
  );
  assert.equal(await page.locator('#faith-table tr').count(), 4, `${name}: one row per method`);
  const out = JSON.parse(
    execFileSync(
      BIN,
      [
        'faithfulness',
        sample,
        '--region',
        'component',
        '--voxel',
        explained.voxel.join(','),
        '--class',
        String(explained.cls),
        '--methods',
        `${composite},gradient_x_input,random`,
        '--steps',
        '20',
        '--no-ablation',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    ),
  );
  const want = out.faithfulness.methods;
  assert.equal(got.voxels, out.faithfulness.voxels, `${name}: faithfulness region size`);
  let worst = 0;
  got.methods.forEach((m, i) => {
    for (const k of ['aopc_morf', 'aopc_lerf']) {
      const d = Math.abs(m[k] - want[i][k]);
      worst = Math.max(worst, d);
      // The maps agree to 1e-4 of their maximum; near-ties may swap places in the ranking.
      assert.ok(d <= 0.01 + 0.01 * Math.abs(want[i][k]), `${name}: ${m.method} ${k} ${m[k]} vs native ${want[i][k]}`);
    }
  });
  const [lrp, , random] = got.methods;
  assert.ok(lrp.aopc_morf > random.aopc_morf, `${name}: ${composite}'s MoRF AOPC beats the random map's`);
  await shot(page, `${name.replace(/\W+/g, '_')}-faithfulness`);
  return `faithfulness of ${got.voxels} voxels (${composite}, gradient_x_input, random; 20 steps) in ${seconds.toFixed(1)} s, AOPC MoRF ${got.methods.map((m) => m.aopc_morf.toFixed(3)).join('/')}, max |Δ| vs native ${worst.toExponential(1)}`;
}

/**
 * "Use your own…": models that do not fit are refused in words naming the problem (the loaded
 * one stays), a fitting one replaces it and the study is segmented again.
 */
async function ownModels(page, name) {
  const dir = fs.mkdtempSync(path.join(tmp, 'models-'));
  const file = (f, text) => {
    fs.writeFileSync(path.join(dir, f), text);
    return path.join(dir, f);
  };
  const config = { in_channels: 6, classes: 2, levels: 2, base_channels: 8, blocks: 1, norm: 'none', down: 'max_pool' };
  execFileSync(BIN, [
    'model',
    'init',
    '--config',
    file('two.json', JSON.stringify(config)),
    '--out',
    path.join(dir, 'two.safetensors'),
  ]);
  execFileSync(BIN, ['model', 'bundled', '--out', path.join(dir, 'mine.safetensors')]);
  file('checkpoint_final.pth', 'not read in the page');
  const before = await page.textContent('#model-name');
  const cases = [
    // The two-level weights with a three-level configuration: a tensor is missing.
    [
      ['two.safetensors', 'three.json'],
      /two\.safetensors was not loaded .*lack the tensor "encoder\.2\.0\.conv\.weight"/,
    ],
    [
      ['checkpoint_final.pth'],
      /checkpoint_final\.pth was not loaded .*neither an nnU-Net model folder .*drop the whole folder/,
    ],
  ];
  file('three.json', JSON.stringify({ ...config, levels: 3 }));
  for (const [files, want] of cases) {
    await page.setInputFiles(
      '#model-file',
      files.map((f) => path.join(dir, f)),
    );
    await page.waitForFunction(
      (f) =>
        document.getElementById('status').classList.contains('error') &&
        document.getElementById('status').textContent.includes(f),
      files[0],
      { timeout: 60_000 },
    );
    assert.match(await statusText(page), want, `${name}: ${files}`);
    assert.equal(await page.textContent('#model-name'), before, `${name}: the previous model stays`);
  }
  await page.setInputFiles('#model-file', [path.join(dir, 'mine.safetensors')]);
  await page.waitForFunction(() => document.getElementById('model-name').textContent.startsWith('mine'), null, {
    timeout: 60_000,
  });
  await page.waitForFunction(
    () => /Double-click/.test(document.getElementById('status').textContent) && !window.__seglrp.busy,
    null,
    { timeout: 300_000 },
  );
  assert.match(
    await page.textContent('#model-name'),
    /^mine\.safetensors \(SegLRP U-Net \(3 levels, 8 base channels, \d block\(s\) per level\), [\d,]+ parameters\)/,
  );
  return sameMask(page, name, 'own model (the bundled weights as a file)');
}

/** **Back to the bundled model**, waiting until the page says it is loaded. */
async function backToBundled(page) {
  await page.click('#model-bundled');
  await page.waitForFunction(
    () =>
      /Model bundled liver U-Net loaded/.test(document.getElementById('status').textContent) && !window.__seglrp.busy,
    null,
    { timeout: 120_000 },
  );
}

/**
 * Explains `voxel` with the menus set to `cls`, `scope` and EpsilonGammaBox (the Explain button);
 * returns the explanation (`{cls, voxels, shares, relevance}`), or null if none came.
 */
async function explainWithMenus(page, cls, scope, voxel) {
  await page.selectOption('#class', cls);
  await page.selectOption('#scope', scope);
  await page.selectOption('#composite', 'EpsilonGammaBox');
  await page.evaluate(() => {
    window.__seglrp.explanation = null;
  });
  await page.evaluate((v) => window.__seglrp.viewer.moveTo(v), voxel);
  await page.click('#explain');
  await explanationSettled(page, 300_000);
  return page.evaluate(() => {
    const e = window.__seglrp.explanation;
    return e && { cls: e.class, voxels: e.voxels, shares: e.shares, relevance: Array.from(e.relevance) };
  });
}

/**
 * A model of another shape decides the study: two channels and three classes (a random U-Net
 * of this project's family). Its card is shown, the drop takes two files matched by nnU-Net's
 * channel suffix, two relevance panels and three classes are offered, and the page's mask and
 * relevance equal the command line's. The bundled model comes back after.
 */
async function anotherShape(page, name) {
  const dir = fs.mkdtempSync(path.join(tmp, 'shape-'));
  const config = { in_channels: 2, classes: 3, levels: 2, base_channels: 8, blocks: 1, norm: 'none', down: 'max_pool' };
  fs.writeFileSync(path.join(dir, 'multi.json'), JSON.stringify(config));
  const model = path.join(dir, 'multi.safetensors');
  execFileSync(BIN, ['model', 'init', '--config', path.join(dir, 'multi.json'), '--seed', '3', '--out', model]);
  const files = [
    ['t2.nii.gz', 'case_0000.nii.gz'],
    ['t1_120s.nii.gz', 'case_0001.nii.gz'],
    ['label.nii.gz', 'case_label.nii.gz'],
  ].map(([from, to]) => {
    fs.copyFileSync(path.join(studyDir, from), path.join(dir, to));
    return path.join(dir, to);
  });
  await page.click('#clear');
  await page.setInputFiles('#model-file', [model]);
  await page.waitForFunction(() => /multi\.safetensors/.test(document.getElementById('model-name').textContent), null, {
    timeout: 60_000,
  });
  await waitStatus(page, /Drop its study/);
  assert.match(await statusText(page), /2 channels \(channel 0, channel 1\), 3 classes/, name);
  assert.match(await page.textContent('#model-card'), /0: channel 0 .*1: channel 1/s, `${name}: the card`);
  assert.deepEqual(
    await page.$$eval('#class option', (o) => o.map((x) => x.value)),
    ['0', '1', '2', 'foreground'],
    `${name}: three classes offered, and all foreground`,
  );
  assert.ok(await page.locator('#load-patient').isDisabled(), `${name}: no liver demo patients for this model`);
  await dropFiles(page, files);
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /Double-click/, `${name}: ${await statusText(page)}`);
  const roles = await page.$$eval('#files select', (s) => s.map((x) => x.value));
  assert.deepEqual(roles, ['channel 0', 'channel 1', 'label'], `${name}: files matched to the card`);
  const [x, y, z] = await page.evaluate(() => window.__seglrp.view.dims.map((d) => Math.floor(d / 2)));
  const seg = path.join(dir, 'native.nii.gz');
  const raw = path.join(dir, 'native.f32');
  const json = path.join(dir, 'native.json');
  execFileSync(
    BIN,
    [
      'explain',
      ...files.slice(0, 2),
      '--model',
      model,
      '--voxel',
      `${x},${y},${z}`,
      '--class',
      '2',
      '--composite',
      'EpsilonGammaBox',
      '--segmentation',
      seg,
      '--raw',
      raw,
      '--json',
      json,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  const want = Array.from(nativeInfo(seg).values);
  const differ = mask.filter((v, i) => v !== want[i]).length;
  assert.equal(differ, 0, `${name}: ${differ} voxels of the three-class mask differ from the native one`);
  const classes = new Set(mask);
  const got = await explainWithMenus(page, '2', 'voxel', [x, y, z]);
  assert.ok(got, `${name}: ${await statusText(page)}`);
  assert.equal(got.cls, 2);
  assert.equal(got.shares.length, 2, `${name}: two shares`);
  assert.equal(await page.locator('#panels figure:not([hidden])').count(), 2, `${name}: two relevance panels`);
  const buf = fs.readFileSync(raw);
  const native = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  assert.equal(got.relevance.length, native.length);
  const { diff, scale } = maxDifference(got.relevance, native);
  assert.ok(scale > 0 && diff <= 1e-4 * scale, `${name}: page vs native relevance ${diff} of ${scale}`);
  const grid = await referenceGrid(page, name, dir, files, model);
  const onnx = await onnxModel(page, name, dir, files.slice(0, 2));
  // The two-channel study cannot be the liver model's: the model change ends saying so.
  await backToBundled(page);
  assert.equal(await page.locator('#class option').count(), 2, `${name}: the bundled model's classes again`);
  await page.click('#clear');
  await dropFiles(page, [sample, path.join(studyDir, 'label.nii.gz')]);
  await waitStatus(page, /Double-click/);
  await sameMask(page, name, 'bundled model again');
  return `a two-channel three-class model: mask (classes ${[...classes].sort().join(', ')}) and relevance (max|ΔR| ${diff.toExponential(2)} of ${scale.toExponential(2)}) = native; ${grid}; ${onnx}`;
}

/**
 * An nnU-Net trained-model folder dropped on the page as its .zip (four channels CT, T1, T1ce,
 * T2; three classes; random weights, `tests/nnunet_folder.py`): its card, four files matched by
 * nnU-Net's channel suffix, two of them at half the in-plane resolution resampled onto the
 * finest grid, four relevance panels and the classes by name; the mask, a voxel's relevance and
 * the region map of all of a class equal `seglrp explain`'s on the same archive. The bundled model
 * comes back after.
 */
async function nnunetModel(page, name) {
  const dir = fs.mkdtempSync(path.join(tmp, 'nnunet-'));
  const maker = path.join(path.dirname(new URL(import.meta.url).pathname), 'nnunet_folder.py');
  const archive = execFileSync(PYTHON, [maker, dir, '--channels', '4', '--zip']).toString().trim();
  const halve = `import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1])
a = np.asarray(img.dataobj, dtype=np.float32)[::2, ::2, :]
nib.save(nib.Nifti1Image(a, img.affine @ np.diag([2.0, 2.0, 1.0, 1.0])), sys.argv[2])`;
  const study = ['t2', 't1_plain', 't1_20s', 't1_15min'].map((s, i) => {
    const to = path.join(dir, `case_000${i}.nii.gz`);
    if (i < 2) fs.copyFileSync(path.join(studyDir, `${s}.nii.gz`), to);
    else execFileSync(PYTHON, ['-c', halve, path.join(studyDir, `${s}.nii.gz`), to]);
    return to;
  });
  await page.click('#clear');
  await dropFiles(page, [archive]);
  await page.waitForFunction(() => /Dataset003_Test/.test(document.getElementById('model-name').textContent), null, {
    timeout: 120_000,
  });
  await waitStatus(page, /Drop its study/);
  assert.match(await statusText(page), /4 channels \(CT, T1, T1ce, T2\), 3 classes/, name);
  assert.match(await page.textContent('#model-name'), /nnU-Net PlainConvUNet \(3d_fullres\), fold 0/, name);
  assert.match(
    await page.textContent('#model-card'),
    /0: CT \(CT: clipped to -20…400.*3: T2 \(z-score over the non-zero mask\)/s,
    name,
  );
  assert.deepEqual(
    await page.$$eval('#class option', (o) => o.map((x) => x.textContent)),
    ['0: background', '1: liver', '2: tumour', 'all foreground'],
    `${name}: the classes named by dataset.json`,
  );
  await dropFiles(page, study);
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /case_0002\.nii\.gz \(.*\) resampled onto the grid of case_0000/, name);
  const roles = await page.$$eval('#files select', (s) => s.map((x) => x.value));
  assert.deepEqual(roles, ['CT', 'T1', 'T1ce', 'T2'], `${name}: files matched to the card by suffix`);
  const [x, y, z] = await page.evaluate(() => window.__seglrp.view.dims.map((d) => Math.floor(d / 2)));
  const native = (scope, which = cls) => {
    const out = { seg: path.join(dir, `${scope}-${which}.nii.gz`), raw: path.join(dir, `${scope}-${which}.f32`) };
    // Regions are chosen in the page's segmentation, so that a voxel whose two largest logits
    // tie to float32 rounding cannot put a voxel in one region and not the other.
    const region = scope === 'voxel' ? [] : ['--region', scope, '--prediction', pageSeg];
    const args = [...study, '--model', archive, '--voxel', `${x},${y},${z}`, '--class', String(which)];
    const summary = execFileSync(
      BIN,
      ['explain', ...args, '--composite', 'EpsilonGammaBox', ...region, '--segmentation', out.seg, '--raw', out.raw],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const buf = fs.readFileSync(out.raw);
    const relevance = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    return { ...out, summary: JSON.parse(summary), relevance };
  };
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  // The more frequent foreground class of the random network is explained.
  const count = (c) => mask.filter((v) => v === c).length;
  const cls = count(2) >= count(1) ? 2 : 1;
  assert.ok(count(cls) > 0, `${name}: the network finds some foreground`);
  const voxel = native('voxel');
  const { info, values } = nativeInfo(voxel.seg);
  const pageSeg = path.join(dir, 'page-seg.nii');
  fs.writeFileSync(pageSeg, Buffer.from(niftiBytes(Uint8Array.from(mask), info.dims.slice(0, 3), info.affine)));
  // The network's instance norms sum in another order in the page (one thread, 4 lanes) than
  // natively: a voxel whose two largest logits tie to that rounding may flip, no more.
  const differ = mask.filter((v, i) => v !== values[i]).length;
  assert.ok(differ <= 1e-4 * mask.length, `${name}: ${differ} voxels of the nnU-Net model's mask differ from native`);
  const results = [];
  // A voxel and all of a class, then all foreground (each voxel for its own class) at once.
  for (const [scope, which] of [
    ['voxel', cls],
    ['all', cls],
    ['all', 'foreground'],
  ]) {
    const got = await explainWithMenus(page, String(which), scope, [x, y, z]);
    assert.ok(got, `${name}, ${scope} ${which}: ${await statusText(page)}`);
    // All foreground has no one class (the engine leaves it undefined).
    assert.equal(got.cls ?? null, which === 'foreground' ? null : which, `${name}: the class explained`);
    assert.equal(got.shares.length, 4, `${name}: four shares`);
    assert.equal(await page.locator('#panels figure:not([hidden])').count(), 4, `${name}: four relevance panels`);
    const want = scope === 'voxel' ? voxel : native(scope, which);
    assert.equal(got.relevance.length, want.relevance.length);
    const { diff, scale } = maxDifference(got.relevance, want.relevance);
    // A region map divides each voxel's map by its sum ΣM_a, which magnifies the float32 rounding of
    // the instance norms' sums (summed in another order in the page) where ΣM_a is small: 1e-3
    // of max |R| for a region, 1e-4 for a voxel (graph_parity.py checks both against float64).
    const bound = scope === 'voxel' ? 1e-4 : 1e-3;
    assert.ok(scale > 0 && diff <= bound * scale, `${name}, ${scope} ${which}: page vs native ${diff} of ${scale}`);
    if (scope !== 'voxel') assert.equal(got.voxels, want.summary.explanation.voxels, `${name}: region size`);
    if (which === 'foreground') assert.equal(got.voxels, count(1) + count(2), `${name}: all foreground voxels`);
    const what = scope === 'voxel' ? 'a voxel' : `all ${which === 'foreground' ? 'foreground' : `class ${which}`}`;
    results.push(`${what}: max|ΔR| ${diff.toExponential(2)} of ${scale.toExponential(2)}`);
  }
  // The cohort follows the card: the table's columns (the plot's axes, in the model's order) and
  // the CSV's share columns are the four channels, one row per explanation.
  const channels = ['CT', 'T1', 'T1ce', 'T2'];
  const header = await page.$$eval('#cohort-table tr:first-child th', (t) => t.map((x) => x.textContent));
  assert.deepEqual(header.slice(4), channels, `${name}: the cohort table's channel columns`);
  const csv = parseCsv(fs.readFileSync(await download(page, '#save-csv', name), 'utf8'));
  assert.deepEqual(csv[0].slice(7), [...channels, 'note', 'non_finite_voxels'], `${name}: the CSV's columns`);
  assert.equal(csv.length, 4, `${name}: a header and a row per explanation`);
  // Exports onto an input's grid (here the half-resolution T1ce's): the relevance and the
  // segmentation equal `seglrp resample` of the exports on the study's grid (with --nearest).
  const moved = [];
  for (const [button, nearest] of [
    ['#save-rel', []],
    ['#save-seg', ['--nearest']],
  ]) {
    await page.selectOption('#export-grid', '');
    const onStudy = await download(page, button, name);
    await page.selectOption('#export-grid', path.basename(study[2]));
    const onInput = await download(page, button, name);
    const want = path.join(dir, `want-${path.basename(onInput)}`);
    execFileSync(BIN, ['resample', onStudy, '--like', study[2], '--out', want, ...nearest]);
    const [a, b, like] = [nativeInfo(onInput), nativeInfo(want), nativeInfo(study[2])];
    assert.deepEqual(a.info.dims.slice(0, 3), like.info.dims.slice(0, 3), `${name}: ${button} on the input's grid`);
    assert.deepEqual(a.info.affine, like.info.affine, `${name}: ${button} with the input's affine`);
    const { diff, scale } = maxDifference(a.values, b.values);
    assert.ok(a.values.length === b.values.length && diff <= 1e-6 * scale, `${name}: ${button}: ${diff} of ${scale}`);
    moved.push(`${button === '#save-rel' ? 'relevance' : 'segmentation'} max|Δ| ${diff.toExponential(1)}`);
  }
  await page.selectOption('#export-grid', '');
  await backToBundled(page);
  await page.click('#clear');
  await dropFiles(page, [sample, path.join(studyDir, 'label.nii.gz')]);
  await waitStatus(page, /Double-click/);
  await sameMask(page, name, 'bundled model after the nnU-Net one');
  return `an nnU-Net model folder's .zip (CT, T1, T1ce, T2 on two grids; background, liver, tumour): mask = native (${differ} of ${mask.length} voxels differ); ${results.join('; ')}; exported onto the T1ce's grid = seglrp resample (${moved.join(', ')})`;
}

/**
 * A DICOM series for a one-channel CT model: a patient's folder from pydicom's test data (a CT
 * series of five slices and a two-plane scout) dropped as files; the series becomes the study
 * (the scout is set aside with its reason), its segmentation is `seglrp segment`'s of the folder.
 */
async function dicomSeries(page, name) {
  const dir = fs.mkdtempSync(path.join(tmp, 'dicom-'));
  const maker = path.join(path.dirname(new URL(import.meta.url).pathname), 'nnunet_folder.py');
  const archive = execFileSync(PYTHON, [maker, dir, '--channels', '1', '--seed', '5', '--zip']).toString().trim();
  const patient = path.join(DATA, 'pydicom/data/test_files/dicomdirtests/98892001');
  const files = fs
    .readdirSync(patient)
    .flatMap((s) => fs.readdirSync(path.join(patient, s)).map((f) => path.join(patient, s, f)));
  await page.click('#clear');
  await dropFiles(page, [archive]);
  await waitStatus(page, /Drop its study/);
  await dropFiles(page, files);
  await waitStatus(page, /Double-click/);
  const series = 'SmartScore - Gated 0.5 sec (series 5)';
  const rows = await page.$$eval('#files tr', (r) => r.map((x) => x.textContent));
  assert.ok(
    rows.some((r) => r.includes(series) && r.includes('16×16×5')),
    `${name}: the CT series listed: ${rows}`,
  );
  assert.ok(
    rows.some((r) => /Scout \(series 4\).*different planes/.test(r)),
    `${name}: the scout set aside: ${rows}`,
  );
  assert.deepEqual(await page.evaluate(() => window.__seglrp.view.dims), [16, 16, 5], `${name}: the series' grid`);
  const seg = path.join(dir, 'seg.nii.gz');
  // The page runs one pass over the study on its own grid: `segment --whole`.
  execFileSync(BIN, ['segment', patient, '--model', archive, '--whole', '--out', seg], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  const { values } = nativeInfo(seg);
  const differ = mask.filter((v, i) => v !== values[i]).length;
  assert.ok(mask.length === values.length && differ <= 1e-4 * mask.length, `${name}: DICOM mask vs native: ${differ}`);
  await backToBundled(page);
  // JPEG 2000 in the page (openjp2 compiled to wasm): a lossless MR slice decodes as natively.
  await page.click('#clear');
  const j2k = path.join(DATA, 'pydicom/data/test_files/MR_small_jp2klossless.dcm');
  await dropFiles(page, [j2k]);
  await waitStatus(page, /Showing MR \(series 1\)/);
  const shown = await page.evaluate(() => Array.from(window.__seglrp.view.channels[0]));
  const want = Array.from(nativeInfo(j2k).values);
  assert.ok(want.length === 4096 && shown.every((v, i) => v === want[i]), `${name}: JPEG 2000 pixels as native`);
  await page.click('#clear');
  await dropFiles(page, [sample, path.join(studyDir, 'label.nii.gz')]);
  await waitStatus(page, /Double-click/);
  return `a DICOM CT series (5 files + a scout) for a one-channel nnU-Net model: mask = seglrp segment --whole's of the folder (${differ} of ${mask.length} voxels differ); a JPEG 2000 slice decoded as natively`;
}

/**
 * An ONNX file exported by PyTorch, with a MONAI bundle's metadata.json naming its channels and
 * classes: the card does not say how the input is normalised, so the study waits for the user
 * to choose; then the page's mask equals the command line's with the same choice.
 */
/**
 * Channels on different grids: channel 1 at half the resolution is resampled onto channel 0's
 * (the finest) grid, and, chosen in the **Reference grid** menu, the study takes channel 1's
 * grid instead; the page's mask is then `seglrp segment --grid` 's.
 */
async function referenceGrid(page, name, dir, files, model) {
  const coarse = path.join(dir, 'coarse_0001.nii.gz');
  const halve = `import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1])
a = np.asarray(img.dataobj, dtype=np.float32)[::2, ::2, :]
affine = img.affine @ np.diag([2.0, 2.0, 1.0, 1.0])
nib.save(nib.Nifti1Image(a, affine), sys.argv[2])`;
  execFileSync(PYTHON, ['-c', halve, files[1], coarse]);
  const study = [files[0], coarse];
  await page.click('#clear');
  await dropFiles(page, study);
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /coarse_0001\.nii\.gz \(.*\) resampled onto the grid of case_0000/, name);
  assert.ok(await page.locator('#grid-choice').isVisible(), `${name}: the reference-grid menu is offered`);
  const options = await page.$$eval('#grid option', (o) => o.map((x) => x.value));
  assert.deepEqual(options, ['', 'channel 0', 'channel 1'], `${name}: grid menu`);
  await page.selectOption('#grid', 'channel 1');
  await waitStatus(page, /case_0000\.nii\.gz \(.*\) resampled onto the grid of coarse_0001/);
  const dims = await page.evaluate(() => window.__seglrp.view.dims);
  const seg = path.join(dir, 'native-coarse.nii.gz');
  execFileSync(BIN, ['segment', ...study, '--model', model, '--grid', 'channel 1', '--out', seg], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const native = nativeInfo(seg);
  assert.deepEqual(dims, native.info.dims.slice(0, 3), `${name}: the study on channel 1's grid`);
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  const differ = mask.filter((v, i) => v !== native.values[i]).length;
  assert.equal(differ, 0, `${name}: ${differ} voxels of the mask on channel 1's grid differ from --grid's`);
  // The study of one grid again, for what follows.
  await page.click('#clear');
  await dropFiles(page, files);
  await waitStatus(page, /Double-click/);
  return `channels on two grids: resampled onto the finest, or onto channel 1's (${dims.join('×')}) as --grid does`;
}

async function onnxModel(page, name, dir, files) {
  const model = path.join(dir, 'net.onnx');
  execFileSync(PYTHON, [
    '-c',
    `import torch, json, sys
torch.manual_seed(5)
net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 1)).eval()
torch.onnx.export(net, (torch.zeros(1, 2, 16, 16, 16),), sys.argv[1], input_names=['image'], output_names=['logits'], opset_version=17, dynamo=False)
meta = {'network_data_format': {'inputs': {'image': {'num_channels': 2, 'channel_def': {'0': 'T2', '1': 'ADC'}}},
        'outputs': {'pred': {'num_channels': 3, 'channel_def': {'0': 'background', '1': 'lesion', '2': 'oedema'}}}}}
json.dump(meta, open(sys.argv[2], 'w'))`,
    model,
    path.join(dir, 'metadata.json'),
  ]);
  await page.setInputFiles('#model-file', [model, path.join(dir, 'metadata.json')]);
  await page.waitForFunction(
    () => /Model net\.onnx loaded/.test(document.getElementById('status').textContent) && !window.__seglrp.busy,
    null,
    { timeout: 120_000 },
  );
  assert.match(await statusText(page), /does not state how its input is normalised/, `${name}: ONNX, no scheme`);
  assert.deepEqual(
    await page.$$eval('#class option', (o) => o.map((x) => x.textContent)),
    ['0: background', '1: lesion', '2: oedema', 'all foreground'],
    `${name}: the classes named by the metadata`,
  );
  await page.selectOption('#normalisation', 'zscore');
  await waitStatus(page, /Double-click/);
  assert.match(await statusText(page), /Double-click/, `${name}: ${await statusText(page)}`);
  const seg = path.join(dir, 'onnx.nii.gz');
  execFileSync(
    BIN,
    ['explain', ...files, '--model', model, '--normalisation', 'zscore', '--voxel', '0,0,0', '--segmentation', seg],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  const want = Array.from(nativeInfo(seg).values);
  const differ = mask.filter((v, i) => v !== want[i]).length;
  assert.equal(differ, 0, `${name}: ${differ} voxels of the ONNX model's mask differ from the native one`);
  return `an ONNX file (T2, ADC; background, lesion, oedema; z-score chosen in the page): mask = native`;
}

/** Saves both exports through the page and reads them back natively. */
async function exportsReadBack(page, name, got) {
  const saved = {};
  for (const [button, file] of [
    ['#save-rel', 'relevance'],
    ['#save-seg', 'segmentation'],
  ]) {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
    saved[file] = path.join(tmp, `${file}-${dl.suggestedFilename()}`);
    await dl.saveAs(saved[file]);
  }
  const rel = nativeInfo(saved.relevance);
  const study = nativeInfo(sample);
  assert.deepEqual(rel.info.dims, study.info.dims, `${name}: relevance NIfTI dims`);
  assert.equal(rel.info.datatype, 'float32');
  const bad = got.relevance.map((v, i) => [i, v, rel.values[i]]).filter(([, a, b]) => a !== b);
  assert.equal(rel.values.length, got.relevance.length);
  assert.deepEqual(bad.slice(0, 5), [], `${name}: saved relevance = shown relevance (${bad.length} differ)`);
  const seg = nativeInfo(saved.segmentation);
  assert.equal(seg.info.datatype, 'uint8');
  const mask = await page.evaluate(() => Array.from(window.__seglrp.mask));
  assert.deepEqual(Array.from(seg.values), mask, `${name}: saved segmentation = shown mask`);
  assert.deepEqual(rel.info.affine, study.info.affine);
  assert.deepEqual(seg.info.affine, study.info.affine);
}

/** RFC 4180 rows (quoted cells may hold commas and doubled quotes). */
function parseCsv(text) {
  const rows = [];
  for (const line of text.trim().split(/\r?\n/)) {
    const cells = [];
    const re = /("((?:[^"]|"")*)"|[^,]*)(,|$)/g;
    let m;
    while ((m = re.exec(line)) && m[0] !== '') {
      cells.push(m[2] !== undefined ? m[2].replace(/""/g, '"') : m[1]);
      if (m[3] === '') break;
    }
    rows.push(cells);
  }
  return rows;
}

const PNG_SIGNATURE = '89504e470d0a1a0a';
/** Width and height of a PNG file (its IHDR), after checking its signature. */
function pngSize(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.subarray(0, 8).toString('hex'), PNG_SIGNATURE, `${file} is a PNG`);
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

async function download(page, button, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  const file = path.join(ARTEFACTS, `${name.replace(/\W+/g, '_')}-${dl.suggestedFilename()}`);
  await dl.saveAs(file);
  return file;
}

/** The six-panel figure and the bar chart as PNG files of the expected size. */
async function figuresExported(page, name) {
  const figure = await download(page, '#save-figure', name);
  const panel = await page.evaluate(() => {
    const c = document.querySelector('#panels canvas');
    return [c.width, c.height];
  });
  const [w, h] = pngSize(figure);
  assert.equal(w, 3 * panel[0], `${name}: the figure is three panels wide`);
  assert.ok(h > 2 * panel[1], `${name}: the figure is two panels (and captions) high`);
  const bars = await download(page, '#save-bars', name);
  const [bw, bh] = pngSize(bars);
  assert.ok(bw >= 420 && bh >= 220, `${name}: bar chart ${bw}×${bh}`);
}

/**
 * The cohort figure of Chlebus et al. 2019 from the demo menu's cohort (two patients, to keep the test short):
 * each line's shares equal `seglrp explain --region all` on the same patient; the CSV and the
 * plot's PNG read back.
 */
async function cohortRun(page, name) {
  const loaded = () =>
    page.evaluate(() => ({ study: window.__seglrp.name, tumour: window.__seglrp.mask.reduce((n, v) => n + v, 0) }));
  const before = await loaded();
  await page.click('#clear-cohort');
  await page.fill('#cohort-size', '2');
  await page.selectOption('#composite', 'EpsilonGammaBox');
  // Cancel while the workers compute: nothing is added, the extra workers end, the page is free.
  await page.click('#run-cohort');
  await page.waitForFunction(() => /now patient/.test(document.getElementById('status').textContent), null, {
    timeout: 120_000,
  });
  await page.click('#cancel');
  await waitStatus(page, /^Cancelled\./);
  assert.equal(
    await page.evaluate(() => window.__seglrp.cohort.rows.length + (window.__seglrp.busy ? 100 : 0)),
    0,
    `${name}: cancelled cohort left rows or a busy page`,
  );
  await page.click('#run-cohort');
  await page.waitForFunction(
    () =>
      /^Cohort: \d+ patients explained|stopped/.test(document.getElementById('status').textContent) ||
      document.getElementById('status').classList.contains('error'),
    null,
    { timeout: 900_000 },
  );
  const done = await statusText(page);
  assert.match(done, /^Cohort: 2 patients explained/, `${name}: ${done}`);
  // Two patients at once where there are two cores and a single-threaded engine (pool.js): one
  // worker each; where the engine's threads use the cores already, one worker.
  const workers = +done.match(/on (\d+) workers?/)[1];
  const [cores, threads] = await page.evaluate(() => [navigator.hardwareConcurrency, window.__seglrp.compute.threads]);
  const want = threads > 1 ? 1 : Math.min(2, cores);
  assert.equal(
    workers,
    want,
    `${name}: ${workers} workers for 2 patients on ${cores} cores, ${threads} thread(s) each`,
  );
  assert.deepEqual(await loaded(), before, `${name}: the loaded study is untouched by the cohort run`);
  const rows = await page.evaluate(() => window.__seglrp.cohort.rows);
  assert.deepEqual(
    rows.map((r) => r.study),
    ['demo patient 1', 'demo patient 2'],
  );
  let worst = 0;
  for (const [i, row] of rows.entries()) {
    const file = path.join(tmp, `cohort-${i + 1}.nii.gz`);
    execFileSync(BIN, ['sample', '--patient', String(i + 1), '--out', file]);
    const out = JSON.parse(
      execFileSync(BIN, ['explain', file, '--region', 'all', '--composite', 'EpsilonGammaBox'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    assert.equal(row.voxels, out.explanation.voxels, `${name}: patient ${i + 1} region size`);
    row.shares.forEach((v, c) => {
      worst = Math.max(worst, Math.abs(v - out.explanation.shares[c]));
    });
  }
  assert.ok(worst < 1e-4, `${name}: cohort shares vs native differ by ${worst}`);
  const csv = parseCsv(fs.readFileSync(await download(page, '#save-csv', name), 'utf8'));
  assert.deepEqual(csv[0].slice(7), [
    'T2',
    'T1 plain',
    'T1 20 s',
    'T1 60 s',
    'T1 120 s',
    'T1 15 min',
    'note',
    'non_finite_voxels',
  ]);
  assert.equal(csv.length, 3, `${name}: a header and two rows`);
  csv.slice(1).forEach((cells, i) => {
    const shares = cells.slice(7, 13).map(Number);
    assert.deepEqual(cells.slice(13), ['', '0'], `${name}: CSV row ${i + 1}: no note, no NaN voxels`);
    assert.deepEqual(shares, rows[i].shares, `${name}: CSV row ${i + 1} = the plotted shares`);
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  });
  const [w, h] = pngSize(await download(page, '#save-plot', name));
  assert.ok(w >= 640 && h >= 360, `${name}: plot ${w}×${h}`);
  await shot(page, `${name.replace(/\W+/g, '_')}-cohort`);
  return `cohort of 2 (${done.match(/in (\d+ s)/)?.[1]} on ${workers} workers, cancel checked): shares = native within ${worst.toExponential(1)}, CSV and PNG read back`;
}

/** A GPU buffer limit below what the study needs: refused in words, nothing else changes. */
async function tooBigForTheGpu(page, name) {
  const limits = await page.evaluate(() => window.__seglrp.compute.limits);
  assert.ok(limits?.maxStorageBufferBindingSize > 0, `${name}: the device's limits are reported`);
  assert.match(await page.getAttribute('#backend', 'title'), /largest GPU buffer \d+ MiB/);
  await page.evaluate(() => window.__seglrp.compute.call('bufferLimit', { bytes: 2 ** 20 }));
  await page.selectOption('#patient', PATIENT);
  await page.click('#load-patient');
  await page.waitForFunction(() => document.getElementById('status').classList.contains('error'), null, {
    timeout: 120_000,
  });
  assert.match(
    await statusText(page),
    /needs GPU buffers of \d+ MiB and this GPU allows 1 MiB: open the page with \?backend=cpu/,
  );
  await page.evaluate(
    (b) => window.__seglrp.compute.call('bufferLimit', { bytes: b }),
    Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize),
  );
  await page.click('#clear');
}

/** A click on the main view moves the crosshair of all seven views (NiiVue's broadcast). */
async function linkedCrosshairs(page, name) {
  const [x, y, z] = await tumourVoxel(page);
  await axialPoint(page, [x, y, z]);
  const at = await page.evaluate(([x, y, z]) => window.__seglrp.viewer.axialPoint([x + 6, y + 4, z]), [x, y, z]);
  const box = await page.locator('#main').boundingBox();
  await page.mouse.click(box.x + at.x, box.y + at.y);
  const { main, panels, voxel } = await page.evaluate(() => {
    const v = window.__seglrp.viewer;
    return {
      main: Array.from(v.main.scene.crosshairPos),
      panels: v.panels.map((nv) => Array.from(nv.scene.crosshairPos)),
      voxel: v.crosshair(),
    };
  });
  assert.deepEqual(voxel, [x + 6, y + 4, z], `${name}: the click moved the crosshair to the clicked voxel`);
  for (const p of panels)
    assert.ok(
      p.every((f, k) => Math.abs(f - main[k]) < 1e-6),
      `${name}: a panel's crosshair ${p} follows the main view's ${main}`,
    );
  assert.match(await page.textContent('#location'), new RegExp(`voxel \\(${x + 6}, ${y + 4}, ${z}\\)`));
}

/** The threshold and opacity sliders reach every relevance panel. */
async function displayControls(page, name) {
  const slide = (id, value) =>
    page.evaluate(
      ([id, value]) => {
        const el = document.getElementById(id);
        el.value = value;
        el.dispatchEvent(new Event('input', { bubbles: true }));
      },
      [id, value],
    );
  await slide('threshold', '0.2');
  await slide('opacity', '0.5');
  const got = await page.evaluate(() => {
    const v = window.__seglrp.viewer;
    return {
      rmax: v.overlays.relevance.rmax,
      layers: v.panels.map((nv) => [nv.volumes[1].cal_min, nv.volumes[1].opacity]),
    };
  });
  for (const [calMin, opacity] of got.layers) {
    assert.ok(
      Math.abs(calMin - 0.2 * got.rmax) < 1e-9 && opacity === 0.5,
      `${name}: panel shows from ${calMin} at opacity ${opacity} (max |R| ${got.rmax})`,
    );
  }
  assert.equal(await page.textContent('#threshold-label'), '20 % of max |R|');
  await slide('threshold', '0.05');
  await slide('opacity', '0.8');
}

/** device.destroy() under the loaded study: the next click runs on the CPU, study kept. */
async function gpuLost(page, name) {
  const { destroyed } = await page.evaluate(() => window.__seglrp.compute.call('loseDevice'));
  assert.ok(destroyed, `${name}: the worker holds a GPU device`);
  const r = await explainAndCompare(page, name, 'Epsilon', 'voxel');
  assert.match(await page.textContent('#backend'), /^cpu \(/, `${name}: moved to the CPU`);
  await sameMask(page, name, 'after the GPU was lost');
  return r;
}

/**
 * Every request: a same-origin GET of the page's static files; after load, only files already
 * fetched at load (a restarted worker fetches its script and the engine again).
 */
function checkRequests(name, requests, origin) {
  const STATIC = /^\/(index\.html|sw\.js|www\/[\w./-]+|node_modules\/@niivue\/niivue\/dist\/index\.js)?$/;
  const atLoad = new Set();
  for (const r of requests) {
    if (/^(data|blob):/.test(r.url)) continue;
    const u = new URL(r.url);
    assert.equal(u.origin, origin, `${name}: request outside the page's origin: ${r.url}`);
    assert.equal(r.method, 'GET', `${name}: ${r.method} ${r.url}`);
    assert.match(u.pathname, STATIC, `${name}: not a static asset: ${r.url}`);
    if (!r.afterLoad) atLoad.add(u.pathname);
    else assert.ok(atLoad.has(u.pathname), `${name}: after load, a request for ${u.pathname}, not fetched at load`);
  }
  return requests.length;
}

// SEGLRP_E2E_ONLY=webgpu|cpu|single runs one of the sessions (while working on one of them).
const ONLY = process.env.SEGLRP_E2E_ONLY;

/**
 * The page left to choose its backend (?backend=auto, the default) where WebGPU exists: on a
 * software adapter (headless Chromium's SwiftShader) the CPU engine, the badge saying why; on
 * a hardware GPU, WebGPU.
 */
async function autoBackend(context, name) {
  const auto = await context.newPage();
  try {
    await auto.goto(`${origin}/`);
    await auto.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
    const adapter = await auto.evaluate(async () => {
      const i = (await navigator.gpu?.requestAdapter())?.info ?? {};
      return [i.vendor, i.architecture, i.device, i.description].join(' ');
    });
    const [backend, title] = await auto.evaluate(() => [
      window.__seglrp.backend,
      document.getElementById('backend').title,
    ]);
    if (/swiftshader|llvmpipe|lavapipe/i.test(adapter)) {
      assert.match(backend, /^cpu \(/, `${name}: a software adapter is passed over`);
      assert.match(title, /software renderer .*backend=webgpu forces it/, `${name}: the badge says why`);
    } else assert.equal(backend, 'webgpu', `${name}: a hardware adapter (${adapter}) is used`);
    return ` (left to choose, on ${adapter.trim()}: ${backend})`;
  } finally {
    await auto.close();
  }
}

/**
 * The CPU engine's threads as the page reports them: on a cross-origin isolated page every core
 * the browser reports (the threaded engine: with relaxed-SIMD multiply-adds where the browser
 * validates relaxed SIMD, unless `simd=plain`), else one, the badge saying why.
 */
async function threadsShown(page, name, isolated, simd) {
  const [backend, title, cores, crossOriginIsolated, relaxed] = await page.evaluate(async () => [
    window.__seglrp.backend,
    document.getElementById('backend').title,
    navigator.hardwareConcurrency,
    self.crossOriginIsolated,
    (await import('./www/relaxed-simd.js')) && globalThis.seglrpRelaxedSimd(),
  ]);
  assert.equal(crossOriginIsolated, isolated, `${name}: cross-origin isolation`);
  const n = isolated ? Math.min(cores, 16) : 1;
  const fma = n > 1 && relaxed && simd !== 'plain' ? ', relaxed-SIMD FMA' : '';
  assert.equal(backend, `cpu (flex${fma}, ${n} thread${n > 1 ? 's' : ''})`, `${name}: threads in the badge`);
  if (!isolated) assert.match(title, /1 thread: the page is not cross-origin isolated/, `${name}: the badge says why`);
  else assert.match(title, /threads? \(every core the browser reports\)/, `${name}: the badge says why`);
  if (n > 1 && simd === 'plain') assert.match(title, /plain wasm SIMD, as asked/, `${name}: the badge says why`);
  else if (n > 1) assert.match(title, relaxed ? /relaxed-SIMD multiply-adds/ : /no relaxed SIMD/, `${name}: badge`);
  return `${n} thread(s)${fma}`;
}

/** The benchmark's conv timing (bench.html) through the page's engine: a time, and a refusal. */
async function convLoop(page, name) {
  const [c, o, dims] = [16, 16, [20, 48, 64]];
  const seconds = await page.evaluate(
    ([c, o, dims]) => window.__seglrp.compute.call('convSpeed', { c, o, dims, reps: 2 }),
    [c, o, dims],
  );
  assert.ok(Number.isFinite(seconds) && seconds > 0 && seconds < 60, `${name}: conv timed (${seconds} s)`);
  const refused = await page.evaluate(() =>
    window.__seglrp.compute.call('convSpeed', { c: 0, o: 1, dims: [8, 8, 8], reps: 1 }).then(
      () => null,
      (e) => e.message,
    ),
  );
  assert.match(refused ?? 'accepted', /every size and the repeats must be 1 to 512/, `${name}: bad conv refused`);
  return `conv loop ${c} → ${o} at ${dims.join('×')}: ${((c * o * 27 * dims.reduce((a, b) => a * b)) / 1e9 / seconds).toFixed(1)} GFMA/s`;
}

async function run({
  name,
  webgpu,
  steps,
  expectBackend,
  isolated = true,
  simd = null,
  only = webgpu ? 'webgpu' : 'cpu',
}) {
  const base = isolated ? origin : plainOrigin;
  if (ONLY && ONLY !== only) {
    console.log(`skipped - ${name} (SEGLRP_E2E_ONLY=${ONLY})`);
    return;
  }
  const t0 = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: webgpu ? [...BASE_ARGS, '--enable-unsafe-webgpu'] : [...BASE_ARGS, '--disable-gpu'],
  });
  try {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
    const requests = [];
    let loaded = false;
    context.on('request', (req) => requests.push({ url: req.url(), method: req.method(), afterLoad: loaded }));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
      if (m.type() === 'warning') console.log(`  [${name} console.warning] ${m.text()}`);
    });
    const chosen = webgpu ? await autoBackend(context, name) : '';
    // The WebGPU session asks for WebGPU: left to choose, the page passes over a software adapter.
    await page.goto(`${base}/${webgpu ? '?backend=webgpu' : simd ? `?simd=${simd}` : ''}`);
    await page.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
    await page.evaluate(() => navigator.serviceWorker.ready);
    loaded = true;
    const backend = await page.evaluate(() => window.__seglrp.backend);
    assert.match(backend, expectBackend, `${name}: backend shown`);
    assert.equal(await page.textContent('#backend'), backend);
    const why = webgpu ? /as asked \(backend=webgpu\)/ : /no WebGPU in this browser|software renderer/;
    assert.match(await page.getAttribute('#backend', 'title'), why, `${name}: the badge says why`);

    // A file that is not NIfTI is refused in plain words, and the page stays usable.
    await page.setInputFiles('#file', {
      name: 'notes.nii',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from('not an image at all'),
    });
    await page.waitForFunction(() => document.getElementById('status').classList.contains('error'), null, {
      timeout: 60_000,
    });
    assert.match(await statusText(page), /notes\.nii: this is not a readable NIfTI file/);
    // Clearing resets the status, so that the waits below see only what the next step says.
    await page.click('#clear');
    assert.equal(await statusText(page), '');

    const notes = await steps(page, name, context);
    const threads = webgpu ? '' : `, ${await threadsShown(page, name, isolated, simd)}`;
    const n = checkRequests(name, requests, base);
    assert.deepEqual(errors, [], `${name}: page errors`);
    console.log(
      `ok - ${name}: backend ${backend}${chosen}${threads}, ${notes}; ${n} requests, all same-origin static files (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  } finally {
    await browser.close();
  }
}

const compared = ({ got, diff, scale }) =>
  `voxel (${got.voxel}), logit ${got.logit.toFixed(4)}, page vs native max|ΔR| ${diff.toExponential(2)} of max|R| ${scale.toExponential(2)}`;

try {
  await run({
    name: 'WebGPU, six files + label, file input',
    webgpu: true,
    expectBackend: /^webgpu$/,
    steps: async (page, name) => {
      await sixFilesWithAssignment(page, name);
      await page.click('#clear');
      await tooBigForTheGpu(page, name);
      const tumour = await demoPatient(page, name);
      await linkedCrosshairs(page, name);
      await shot(page, 'webgpu-demo-patient');
      const lost = await gpuLost(page, name);
      return (
        `demo patient ${PATIENT} as six files and from the menu: ${tumour} tumour voxels, mask = native; too big for the GPU refused; ` +
        `GPU lost (device.destroy()): redone on the CPU, max|ΔR| ${lost.diff.toExponential(2)} of ${lost.scale.toExponential(2)}`
      );
    },
  });
  await run({
    name: 'no WebGPU (CPU fallback), drop events',
    webgpu: false,
    expectBackend: /^cpu \(/,
    steps: async (page, name, context) => {
      const tumour = await demoPatient(page, name);
      await page.click('#clear');
      await realFilesOneByOne(page, name);
      const hostile = await hostileFiles(page, name);
      await dropFiles(page, [sample]);
      await waitStatus(page, /Double-click/);
      assert.match(await statusText(page), /Double-click/, `${name}: ${await statusText(page)}`);
      const r = await explainAndCompare(page, name);
      const conv = await convLoop(page, name);
      await exportsReadBack(page, name, r.got);
      await figuresExported(page, name);
      await displayControls(page, name);
      const first = `${compared(r)}, exports read back; ${conv}`;
      const other = await explainAndCompare(page, name, 'EpsilonAlpha2Beta1');
      const region = await explainAndCompare(page, name, 'EpsilonGammaBox', 'component');
      const faithful = await faithfulnessPanel(page, name, region.got, 'EpsilonGammaBox');
      // With the label dropped beside the study: the missed tumour (the paper's FN figure).
      await dropFiles(page, [sample, path.join(studyDir, 'label.nii.gz')]);
      await waitStatus(page, /Double-click/);
      assert.equal(
        await page.locator('#scope option[value="fn"]').isDisabled(),
        false,
        `${name}: fn offered with a label`,
      );
      const missed = await explainAndCompare(page, name, 'EpsilonGammaBox', 'fn');
      await sameMask(page, name, '4-D file');
      const box = await drawBox(page, name, await tumourVoxel(page));
      const drawn = await explainAndCompare(page, name, 'EpsilonGammaBox', 'drawn', box);
      await ownModels(page, name);
      const shape = await anotherShape(page, name);
      const nnunet = await nnunetModel(page, name);
      const dicom = await dicomSeries(page, name);
      const cohort = await cohortRun(page, name);
      // Offline: the service worker serves the page and the engine; a demo patient still works.
      await context.setOffline(true);
      await page.reload();
      await page.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
      const offline = await demoPatient(page, `${name}, offline`);
      await context.setOffline(false);
      return (
        `demo patient ${PATIENT}: ${tumour} tumour voxels, mask = WebGPU's = native; real files shown or refused; ${hostile}; ${first}; EpsilonAlpha2Beta1: max|ΔR| ${other.diff.toExponential(2)} of ${other.scale.toExponential(2)}; ` +
        `tumour region of ${region.got.voxels} voxels (EpsilonGammaBox, two-pass): max|ΔM_A| ${region.diff.toExponential(2)} of ${region.scale.toExponential(2)}; ` +
        `false negatives (${missed.got.voxels} voxels): max|ΔM_A| ${missed.diff.toExponential(2)} of ${missed.scale.toExponential(2)}; ` +
        `drawn box (${drawn.got.voxels} voxels): max|ΔM_A| ${drawn.diff.toExponential(2)} of ${drawn.scale.toExponential(2)}; ${faithful}; ${shape}; ${nnunet}; ${dicom}; ${cohort}; offline reload: demo patient segmented (${offline} voxels)`
      );
    },
  });
  await run({
    name: 'CPU, one thread (page served without cross-origin isolation)',
    webgpu: false,
    isolated: false,
    only: 'single',
    expectBackend: /^cpu \(flex, 1 thread\)$/,
    steps: async (page, name) => {
      const tumour = await demoPatient(page, name);
      const r = await explainAndCompare(page, name);
      return `demo patient ${PATIENT}: ${tumour} tumour voxels, mask = native; ${compared(r)}`;
    },
  });
  // The threaded engine in its plain-SIMD build, which browsers without relaxed SIMD run (the
  // session above ran the relaxed one where Chromium has it).
  await run({
    name: 'CPU, every thread, plain wasm SIMD (?simd=plain)',
    webgpu: false,
    simd: 'plain',
    only: 'single',
    expectBackend: /^cpu \(flex, \d+ threads?\)$/,
    steps: async (page, name) => {
      const tumour = await demoPatient(page, name);
      const r = await explainAndCompare(page, name);
      return `demo patient ${PATIENT}: ${tumour} tumour voxels, mask = native; ${compared(r)}; ${await convLoop(page, name)}`;
    },
  });
} finally {
  server.close();
  plainServer.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
