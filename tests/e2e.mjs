// End-to-end: the real page in headless Chromium (Playwright), against the native engine.
//   1. WebGPU on (SwiftShader): pick the sample file through the file input, click a voxel,
//      compare the six relevance maps with `seglrp explain` for the same voxel.
//   2. WebGPU off: the page must fall back to the CPU by itself; the file arrives through a
//      drop event this time; same comparison.
// Both runs also assert that the page made no request outside its own origin.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { serve } from '../scripts/serve.mjs';

const BIN = process.env.SEGLRP_BIN;
assert.ok(BIN && fs.existsSync(BIN), 'set SEGLRP_BIN to the native seglrp binary');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'seglrp-e2e-'));
const sample = path.join(tmp, 'sample.nii.gz');
execFileSync(BIN, ['sample', '--out', sample]);

const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const BASE_ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

function nativeRelevance(voxel, cls) {
  const raw = path.join(tmp, `r-${voxel.join('-')}-${cls}.f32`);
  const out = JSON.parse(execFileSync(BIN, ['explain', sample, '--voxel', voxel.join(','), '--class', String(cls), '--raw', raw], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const buf = fs.readFileSync(raw);
  return { summary: out, relevance: new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
}

async function run({ name, webgpu, deliver, expectBackend }) {
  const t0 = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: webgpu ? [...BASE_ARGS, '--enable-unsafe-webgpu'] : [...BASE_ARGS, '--disable-gpu'],
  });
  try {
    const context = await browser.newContext();
    const foreign = [];
    context.on('request', (req) => {
      const u = req.url();
      if (!u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:')) foreign.push(u);
    });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`  [${name} console.${m.type()}] ${m.text()}`); });
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
    const backend = await page.evaluate(() => window.__seglrp.backend);
    assert.match(backend, expectBackend, `${name}: backend shown`);
    assert.equal(await page.textContent('#backend'), backend);

    // A file that is not NIfTI is refused in plain words, and the page stays usable.
    await page.setInputFiles('#file', { name: 'notes.nii', mimeType: 'application/octet-stream', buffer: Buffer.from('not an image at all') });
    await page.waitForFunction(() => document.getElementById('status').classList.contains('error'), null, { timeout: 60_000 });
    assert.match(await page.textContent('#status'), /notes\.nii: this is not a readable NIfTI file/);

    await deliver(page);
    // The refusal above stays on screen until the new file is being read.
    await page.waitForFunction(() => !/notes\.nii/.test(document.getElementById('status').textContent), null, { timeout: 60_000 });
    await page.waitForFunction(() => /Click a voxel/.test(document.getElementById('status').textContent) || document.getElementById('status').classList.contains('error'), null, { timeout: 300_000 });
    const status = await page.textContent('#status');
    assert.match(status, /Click a voxel/, `${name}: status after loading: ${status}`);

    // Click a voxel inside the sample's tumour (left liver lobe, image row ~ middle).
    const box = await page.locator('#axial').boundingBox();
    await page.mouse.click(box.x + box.width * 0.34, box.y + box.height * 0.52);
    await page.waitForFunction(() => window.__seglrp.explanation && !window.__seglrp.busy, null, { timeout: 300_000 });
    const got = await page.evaluate(() => {
      const e = window.__seglrp.explanation;
      return { voxel: e.voxel, cls: e.class, logit: e.logit, shares: e.shares, relevance: Array.from(e.relevance) };
    });
    const panels = await page.locator('#panels canvas').count();
    assert.equal(panels, 6, `${name}: one relevance panel per sequence`);

    const want = nativeRelevance(got.voxel, got.cls);
    assert.equal(got.relevance.length, want.relevance.length);
    let diff = 0, scale = 0;
    for (let i = 0; i < want.relevance.length; i++) {
      diff = Math.max(diff, Math.abs(got.relevance[i] - want.relevance[i]));
      scale = Math.max(scale, Math.abs(want.relevance[i]));
    }
    assert.ok(scale > 0, 'relevance is not all zero');
    assert.ok(diff <= 1e-4 * scale, `${name}: page vs native relevance max diff ${diff} (max |R| ${scale})`);
    assert.ok(Math.abs(got.logit - want.summary.explanation.logit) <= 1e-4 * Math.max(1, Math.abs(got.logit)));
    // The shares printed under the panels are the ones computed from these maps.
    const caption = await page.locator('#panels figcaption').first().textContent();
    assert.ok(caption.includes(`${(100 * got.shares[0]).toFixed(1)} %`), caption);
    assert.deepEqual(foreign, [], `${name}: requests outside the page's origin`);
    assert.deepEqual(errors, [], `${name}: page errors`);
    console.log(`ok - ${name}: backend ${backend}, voxel (${got.voxel}), logit ${got.logit.toFixed(4)}, page vs native max|ΔR| ${diff.toExponential(2)} of max|R| ${scale.toExponential(2)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } finally {
    await browser.close();
  }
}

const bytes = fs.readFileSync(sample);
try {
  await run({
    name: 'WebGPU, file input', webgpu: true, expectBackend: /^webgpu$/,
    deliver: (page) => page.setInputFiles('#file', sample),
  });
  await run({
    name: 'no WebGPU (CPU fallback), drop event', webgpu: false, expectBackend: /^cpu \(/,
    deliver: (page) => page.evaluate((data) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(data)], 'sample.nii.gz'));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, Array.from(bytes)),
  });
} finally {
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
