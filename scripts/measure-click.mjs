// Times the demo page in headless Chromium: engine start, demo patient 13 (generated in the
// page, 128×96×40) load + segmentation by the bundled model, and one click (LRP pass) per backend. Usage: node scripts/measure-click.mjs [webgpu flex]
// (needs `npm start`'s build in www/pkg). Prints one line per backend.
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const backends = process.argv.slice(2).length ? process.argv.slice(2) : ['flex', 'webgpu'];
const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const statusMatches = (re) => (src) => new RegExp(src).test(document.getElementById('status').textContent);
try {
  for (const backend of backends) {
    const page = await browser.newPage();
    let t = Date.now();
    await page.goto(`${origin}/?backend=${backend}`);
    await page.waitForFunction(() => window.__seglrp?.backend, null, { timeout: 120_000 });
    const start = Date.now() - t;
    t = Date.now();
    await page.selectOption('#patient', '13');
    await page.click('#load-patient');
    await page.waitForFunction(statusMatches(), 'Click a voxel', { timeout: 600_000 });
    const segment = Date.now() - t;
    const box = await page.locator('#axial').boundingBox();
    const clicks = [];
    for (let i = 0; i < 3; i++) {
      t = Date.now();
      await page.evaluate(() => { window.__seglrp.explanation = null; });
      await page.mouse.click(box.x + box.width * 0.34, box.y + box.height * 0.52);
      await page.waitForFunction(() => window.__seglrp.explanation && !window.__seglrp.busy, null, { timeout: 600_000 });
      clicks.push(Date.now() - t);
    }
    const name = await page.evaluate(() => window.__seglrp.backend);
    console.log(`${name.padEnd(14)} start ${start} ms | load+segment ${segment} ms | click (LRP) ${clicks.join(', ')} ms`);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
