// Times the demo page in headless Chromium: engine start, demo patient 13 (generated in the
// page, 128×96×40) load + segmentation by the bundled model, three explanations of the voxel at
// the crosshair (one LRP-ε pass each) and, with --region, the map of all predicted tumour
// (EpsilonGammaBox, two passes), and with --cohort N "Explain the demo cohort" for patients 1..N
// (with --workers K: the page's ?workers=K), per backend. Usage:
//   node scripts/measure-click.mjs [--region] [--cohort N [--workers K]] [flex webgpu]
// (needs `npm start`'s build in www/pkg). Prints one line per backend; an explanation as
// "ms until shown (ms until the page answers again)".
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const args = process.argv.slice(2);
const region = args.includes('--region');
const option = (flag) => (args.includes(flag) ? +args[args.indexOf(flag) + 1] : null);
const cohortSize = option('--cohort');
const workers = option('--workers');
const named = args.filter(
  (a, i) => a !== '--region' && !a.startsWith('--') && !['--cohort', '--workers'].includes(args[i - 1]),
);
const backends = named.length ? named : ['flex', 'webgpu'];
const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--enable-unsafe-webgpu',
    '--enable-unsafe-swiftshader',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const explained = (page) =>
  page.waitForFunction(
    () =>
      (window.__seglrp.explanation && !window.__seglrp.busy) ||
      document.getElementById('status').classList.contains('error'),
    null,
    { timeout: 1_800_000 },
  );
async function explain(page, scope, composite) {
  await page.selectOption('#scope', scope);
  await page.selectOption('#composite', composite);
  await page.evaluate(() => {
    window.__seglrp.explanation = null;
  });
  const t = Date.now();
  await page.click('#explain');
  await explained(page);
  const shown = Date.now() - t;
  // The page answers again once NiiVue's redraw of the panels is done (software WebGL in
  // headless Chromium makes that seconds).
  if (!(await page.evaluate(() => !!window.__seglrp.explanation))) throw new Error(await page.textContent('#status'));
  return `${shown} (${Date.now() - t})`;
}
try {
  for (const backend of backends) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    let t = Date.now();
    await page.goto(`${origin}/?backend=${backend}${workers ? `&workers=${workers}` : ''}`);
    await page.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
    const start = Date.now() - t;
    t = Date.now();
    await page.selectOption('#patient', '13');
    await page.click('#load-patient');
    await page.waitForFunction(() => /Double-click/.test(document.getElementById('status').textContent), null, {
      timeout: 600_000,
    });
    const segment = Date.now() - t;
    const clicks = [];
    for (let i = 0; i < 3; i++) clicks.push(await explain(page, 'voxel', 'Epsilon'));
    const all = region ? ` | all tumour (EpsilonGammaBox) ${await explain(page, 'all', 'EpsilonGammaBox')} ms` : '';
    let cohort = '';
    if (cohortSize) {
      await page.selectOption('#composite', 'EpsilonGammaBox');
      await page.fill('#cohort-size', String(cohortSize));
      t = Date.now();
      await page.click('#run-cohort');
      await page.waitForFunction(
        () =>
          /^Cohort: \d+ patients explained|stopped/.test(document.getElementById('status').textContent) ||
          document.getElementById('status').classList.contains('error'),
        null,
        { timeout: 3_600_000 },
      );
      const text = await page.textContent('#status');
      const memory = await page.evaluate(() => window.__seglrp.compute.call('memory'));
      cohort = ` | cohort of ${cohortSize}: ${Date.now() - t} ms (${text.trim()}; main worker's wasm memory ${(memory.wasm_bytes / 2 ** 20).toFixed(0)} MiB)`;
    }
    const name = await page.evaluate(() => window.__seglrp.backend);
    console.log(
      `${name.padEnd(14)} start ${start} ms | load+segment ${segment} ms | voxel (LRP-ε) ${clicks.join(', ')} ms${all}${cohort}`,
    );
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
