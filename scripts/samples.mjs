// Writes two demo-cohort patients as NIfTI files into www/samples/ (patient01, patient02), so
// that drag-and-drop can be tried with real files. They come from the same Rust generator as
// the page's "Demo patient" menu (the wasm engine, run here in Node), so the repository
// carries a generator instead of 20 MB of images.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initSync, cohort_files } from '../www/pkg/seglrp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const wasm = path.join(ROOT, 'www/pkg/seglrp_bg.wasm');
const out = path.join(ROOT, 'www/samples');
const stamp = path.join(out, '.built');
if (fs.existsSync(stamp) && fs.statSync(stamp).mtimeMs >= fs.statSync(wasm).mtimeMs) process.exit(0);
initSync({ module: fs.readFileSync(wasm) });
for (const i of [1, 2]) {
  const dir = path.join(out, `patient${String(i).padStart(2, '0')}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const { name, bytes } of cohort_files(i, true)) {
    fs.writeFileSync(path.join(dir, name.replace(/^patient\d+_/, '')), bytes);
  }
}
fs.writeFileSync(stamp, '');
console.log(`wrote demo patients 1 and 2 to ${path.relative(ROOT, out)}/`);
