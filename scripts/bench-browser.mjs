// Runs bench.html in headless Chromium (WebGPU on whatever adapter it has — SwiftShader on a
// machine without a GPU — and the CPU wasm engine on one thread and on every core, the latter
// with plain wasm SIMD and with relaxed-SIMD multiply-adds) and prints its table, then the CPU
// engine's speed-up from its threads and from relaxed SIMD.
// Usage: node scripts/bench-browser.mjs [--backends webgpu,cpu@1,cpu/plain,cpu] [--sizes 64x64x32;128x128x64;256x256x128]
//        [--clicks 20] [--region 1] [--webgpu-sizes ...] [--webgpu-clicks N] [--webgpu-region 0|1]
// (needs the wasm build in www/pkg: `npm run bench:browser` makes it first). On SwiftShader (a
// software WebGPU, where a 64×64×32 click takes minutes) WebGPU defaults to the smallest size,
// 2 clicks and no region map; on a real GPU to the same as the CPU.
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const backends = (args.backends || 'webgpu,cpu@1,cpu/plain,cpu').split(',');

const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--enable-unsafe-webgpu',
    '--enable-features=Vulkan',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const MB = 2 ** 20;
try {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[page] ${m.text()}`);
  });
  const adapter = await (async () => {
    await page.goto(`${origin}/bench.html`);
    return page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      if (!a) return 'none';
      const i = a.info ?? {};
      return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unnamed';
    });
  })();
  const started = Date.now();
  const software = /swiftshader/i.test(adapter);
  let printed = 0;
  const cell = (v, f) => (v == null ? '—' : f(v));
  const s = (v) => cell(v, (x) => `${x.toFixed(2)} s`);
  const m = (v) => cell(v, (x) => `${(x / MB).toFixed(0)} MB`);
  console.log(
    `SegLRP browser benchmark, ${new Date().toISOString().slice(0, 10)}, Chromium headless, WebGPU adapter: ${adapter}`,
  );
  console.log('');
  console.log(
    '| backend | study | start | load | segment | click (LRP pass) | region map (EpsilonGammaBox) | wasm memory (peak) | GPU reserved | growth over repeated clicks |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const rows = [];
  const conv = [];
  for (const backend of backends) {
    const gpu = backend === 'webgpu';
    const pick = (k, fallback) => (gpu && args[`webgpu-${k}`]) || args[k] || fallback;
    const query = new URLSearchParams({
      auto: '1',
      backends: backend,
      sizes: pick('sizes', gpu && software ? '64x64x32' : '64x64x32;128x128x64;256x256x128'),
      clicks: pick('clicks', gpu && software ? '2' : '20'),
      region: pick('region', gpu && software ? '0' : '1'),
    });
    await page.goto(`${origin}/bench.html?${query}`);
    printed = 0;
    let lastStep = '';
    for (;;) {
      const state = await page.evaluate(
        () =>
          window.__bench && {
            done: window.__bench.done,
            rows: window.__bench.rows,
            step: window.__bench.step,
            conv: window.__bench.conv,
          },
      );
      if (state?.step && state.step !== lastStep) {
        console.error(`[bench] ${state.step}`);
        lastStep = state.step;
      }
      for (const r of state?.rows.slice(printed) ?? []) {
        const region =
          r.region == null ? (r.regionNote ?? '—') : `${r.region.toFixed(2)} s (\\|A\\| = ${r.regionVoxels})`;
        const growth =
          r.growthWasm == null ? '—' : `wasm ${m(r.growthWasm)}, GPU ${m(r.growthGpu)} (${r.clicks} clicks)`;
        console.log(
          `| ${r.backend} | ${r.study} | ${s(r.start)} | ${s(r.load)} | ${s(r.segment)} | ${s(r.click)} | ${region} | ${m(r.wasm)} | ${m(r.gpu)} | ${growth} |${r.error ? ` error: ${r.error}` : ''}`,
        );
        printed++;
        rows.push({ ...r, asked: backend });
      }
      if (state?.done) {
        conv.push(...(state.conv ?? []));
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  // The conv loop alone, per CPU backend (bench.js CONV_SHAPES).
  if (conv.length) {
    console.log('');
    console.log('| conv loop (3×3×3), backend | layer shape | in → out | best of 3 | GFMA/s |');
    console.log('|---|---|---|---|---|');
    for (const r of conv)
      console.log(`| ${r.backend} | ${r.shape} | ${r.channels} | ${r.seconds.toFixed(3)} s | ${r.gfmas.toFixed(1)} |`);
  }
  // The speed-ups, measured in this run (the machine's noise hits both sides alike): every
  // thread against one, and relaxed SIMD against plain (both on every thread).
  const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}× (${a.toFixed(2)} s → ${b.toFixed(2)} s)` : '—');
  const all = rows.filter((r) => r.asked === 'cpu');
  for (const [from, what] of [
    ['cpu@1', '1 thread'],
    ['cpu/plain', 'plain wasm SIMD'],
  ]) {
    const before = rows.filter((r) => r.asked === from);
    if (!before.length || !all.length) continue;
    console.log('');
    console.log(
      `| CPU engine, ${all[0].backend} vs ${what} | load again (read, normalise, forward pass) | segment | click (mean of the repeats) | region map |`,
    );
    console.log('|---|---|---|---|---|');
    for (const r of all) {
      const o = before.find((x) => x.study === r.study);
      if (o)
        console.log(
          `| ${r.study} | ${ratio(o.reload, r.reload)} | ${ratio(o.segment, r.segment)} | ${ratio(o.clickMean, r.clickMean)} | ${ratio(o.region, r.region)} |`,
        );
    }
  }
  console.log('');
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
} finally {
  await browser.close();
  server.close();
}
