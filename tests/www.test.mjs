// Unit tests of the page's DOM-free modules (node --test): outlines, in-memory NIfTI and
// voxel ↔ world, the cohort's CSV, display windows, the cohort's worker pool, the offline list. The page itself is tested by e2e.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { boundary } from '../www/outline.js';
import { niftiBytes, toNative, toWorld } from '../www/nifti-bytes.js';
import { Cohort } from '../www/cohort.js';
import { windowOf } from '../www/sequences.js';
import { names, setNames } from '../www/catalogue.js';

// The engine's catalogue as web.rs sends it (the page gets it from the worker); here a fixture
// with other names, so that nothing below can depend on the demo's six sequences.
setNames({
  sequences: ['T1', 'T1ce', 'T2', 'FLAIR', 'DWI', 'ADC'],
  plot_order: [5, 4, 3, 2, 1, 0],
  classes: ['background', 'tumour'],
  composites: ['EpsilonGammaBox', 'Epsilon'],
  scopes: [{ name: 'all', label: 'all predicted tumour', needs: null }],
  roles: ['T1', 'T1ce', 'T2', 'FLAIR', 'DWI', 'ADC', 'all sequences', 'label', 'unused'],
  demo_patients: 3,
});
const SEQUENCES = names.sequences;
import { Pool, poolSize } from '../www/pool.js';
import { webgpuKind, chooseBackend, threadPlan, engineModule } from '../www/backend.js';
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

test('outline of a 3×3×3 cube: its 26 surface voxels, or 8 per slice in-plane', () => {
  const dims = [5, 5, 5];
  const mask = new Uint8Array(125);
  for (let z = 1; z < 4; z++) for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) mask[x + 5 * y + 25 * z] = 1;
  const count = (m) => m.reduce((n, v) => n + v, 0);
  assert.equal(count(boundary(mask, dims)), 26);
  const axial = boundary(mask, dims, { axial: true });
  assert.equal(count(axial), 24);
  assert.equal(axial[2 + 5 * 2 + 25 * 1], 0, 'the centre of the top slice is inside in-plane');
  assert.equal(boundary(mask, dims)[2 + 5 * 2 + 25 * 1], 1, 'but on the 3-D surface');
});

test('in-memory NIfTI: header fields and voxels', () => {
  const affine = [
    [-2, 0, 0, 10],
    [0, 0, 3, -5],
    [0, 1.5, 0, 7],
    [0, 0, 0, 1],
  ];
  const data = Float32Array.from({ length: 24 }, (_, i) => i * 0.5);
  const v = new DataView(niftiBytes(data, [2, 3, 4], affine));
  assert.equal(v.getInt32(0, true), 348);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => v.getInt16(40 + 2 * i, true)),
    [3, 2, 3, 4],
  );
  assert.equal(v.getInt16(70, true), 16, 'float32');
  assert.deepEqual(
    [1, 2, 3].map((i) => v.getFloat32(76 + 4 * i, true)),
    [2, 1.5, 3],
    'spacing from the affine columns',
  );
  assert.equal(v.getFloat32(108, true), 352);
  assert.equal(v.getFloat32(280 + 16 + 8, true), 3, 'srow_y');
  assert.equal(String.fromCharCode(v.getUint8(344), v.getUint8(345), v.getUint8(346)), 'n+1');
  assert.equal(v.getFloat32(352 + 4 * 23, true), 11.5);
  const u8 = new DataView(niftiBytes(Uint8Array.of(1, 0, 1), [3, 1, 1], affine));
  assert.equal(u8.getInt16(70, true), 2, 'uint8');
  assert.equal(u8.byteLength, 355);
});

test('voxel → world → voxel with a permuted, flipped affine', () => {
  const affine = [
    [-2, 0, 0, 10],
    [0, 0, 3, -5],
    [0, 1.5, 0, 7],
    [0, 0, 0, 1],
  ];
  const dims = [6, 7, 8];
  for (const v of [
    [0, 0, 0],
    [5, 6, 7],
    [3, 1, 4],
  ])
    assert.deepEqual(toNative(affine, dims, toWorld(affine, v)), v);
  assert.deepEqual(toWorld(affine, [1, 2, 3]), [8, 4, 10]);
  assert.deepEqual(toNative(affine, dims, [-1000, 1000, 1000]), [5, 6, 7], 'clamped to the grid');
});

test('cohort CSV: one row per study and region, quoted where needed, replaced on repeat', () => {
  const c = new Cohort();
  c.clear();
  const shares = [0.1, 0.2, 0.3, 0.15, 0.15, 0.1];
  c.add({
    study: 'patient "7", left',
    region: 'all, 12 voxels',
    class: 'tumour',
    composite: 'Epsilon',
    voxels: 12,
    left_out: 0,
    conservation: 0.9,
    shares,
  });
  c.add({
    study: 'patient "7", left',
    region: 'all, 12 voxels',
    class: 'tumour',
    composite: 'Epsilon',
    voxels: 12,
    left_out: 1,
    conservation: 0.8,
    shares,
  });
  c.add({
    study: 'p2',
    region: 'voxel (1, 2, 3)',
    class: 'tumour',
    composite: 'Epsilon',
    voxels: 1,
    left_out: 0,
    conservation: null,
    shares,
  });
  // No positive relevance: empty share cells, the reason in `note`; NaN voxels counted.
  c.add({
    study: 'p3',
    region: 'voxel (0, 0, 0)',
    class: 'tumour',
    composite: 'Epsilon',
    voxels: 1,
    left_out: 0,
    conservation: null,
    shares: null,
    note: 'no positive relevance',
    non_finite: 12,
  });
  const lines = c.csv().split('\r\n');
  assert.equal(
    lines[0],
    `study,region,class,composite,voxels,left_out,conservation,${SEQUENCES.join(',')},note,non_finite_voxels`,
  );
  assert.equal(lines[1], '"patient ""7"", left","all, 12 voxels",tumour,Epsilon,12,1,0.8,0.1,0.2,0.3,0.15,0.15,0.1,,0');
  assert.equal(lines[2], 'p2,"voxel (1, 2, 3)",tumour,Epsilon,1,0,,0.1,0.2,0.3,0.15,0.15,0.1,,0');
  assert.equal(lines[3], 'p3,"voxel (0, 0, 0)",tumour,Epsilon,1,0,,,,,,,,no positive relevance,12');
  assert.equal(lines.length, 5, 'header, three rows, final newline');
});

test('display window: 2nd to 98th percentile of the non-zero voxels', () => {
  const v = new Float32Array(1000);
  for (let i = 0; i < 100; i++) v[i] = i + 1; // 900 zeros are background
  assert.deepEqual(windowOf(v), [3, 99]);
  assert.deepEqual(windowOf(new Float32Array(10)), [0, 1]);
});

test('cohort pool size: a worker per core on the CPU, within memory; one on a GPU; ?workers wins', () => {
  assert.equal(poolSize('cpu (flex)', { cores: 2, memoryGB: 8 }), 2);
  assert.equal(poolSize('cpu (flex)', { cores: 16, memoryGB: 8 }), 5);
  assert.equal(poolSize('cpu (flex)', { cores: 16 }), 8);
  assert.equal(poolSize('cpu (flex)', { cores: 4, memoryGB: 1 }), 1);
  assert.equal(poolSize('webgpu', { cores: 16, memoryGB: 8 }), 1);
  assert.equal(poolSize('webgpu', { cores: 16, asked: 3 }), 3);
  // The threaded CPU engine uses the cores itself: one worker, unless more are asked for.
  assert.equal(poolSize('cpu (flex, 8 threads)', { cores: 8, memoryGB: 16, threads: 8 }), 1);
  assert.equal(poolSize('cpu (flex, 8 threads)', { cores: 8, threads: 8, asked: 2 }), 2);
});

test('CPU threads: every core on an isolated page, one without isolation or on the GPU, ?threads=N', () => {
  assert.deepEqual(threadPlan('cpu', { isolated: true, cores: 8 }).threads, 8);
  assert.equal(threadPlan('cpu', { isolated: true, cores: 64 }).threads, 16);
  assert.equal(threadPlan('cpu', { isolated: true, cores: undefined }).threads, 1);
  const plain = threadPlan('cpu', { isolated: false, cores: 8 });
  assert.equal(plain.threads, 1);
  assert.match(plain.why, /not cross-origin isolated .*COOP\/COEP/);
  assert.equal(threadPlan('cpu', { isolated: false, cores: 8, asked: '4' }).threads, 1);
  assert.equal(threadPlan('cpu', { isolated: true, cores: 8, asked: '1' }).threads, 1);
  assert.equal(threadPlan('flex', { isolated: true, cores: 8, asked: '3' }).threads, 3);
  assert.equal(threadPlan('cpu', { isolated: true, cores: 2, asked: 'x' }).threads, 2);
  assert.equal(threadPlan('auto', { isolated: true, cores: 8 }).threads, 1);
  assert.equal(threadPlan('webgpu', { isolated: true, cores: 8 }).threads, 1);
});

test('engine module: the threaded engine with relaxed SIMD where the browser validates it, plain SIMD elsewhere or when asked', () => {
  assert.equal(engineModule(1, { relaxed: true }).module, './pkg/seglrp.js');
  assert.equal(engineModule(8, { relaxed: true }).module, './pkg-threads-relaxed/seglrp.js');
  const without = engineModule(8, { relaxed: false });
  assert.equal(without.module, './pkg-threads/seglrp.js');
  assert.match(without.why, /no relaxed SIMD/);
  const asked = engineModule(8, { relaxed: true, asked: 'plain' });
  assert.equal(asked.module, './pkg-threads/seglrp.js');
  assert.match(asked.why, /as asked \(simd=plain\)/);
  // The probe itself: valid exactly where V8 has relaxed SIMD (V8 11.4, Chrome 114 and Node 21
  // on); where this Node lacks it by default, its flag must make the probe valid (right bytes).
  const [major, minor] = process.versions.v8.split('.').map(Number);
  const shipped = major > 11 || (major === 11 && minor >= 4);
  assert.equal(globalThis.seglrpRelaxedSimd(), shipped, `V8 ${process.versions.v8}`);
  if (!shipped) {
    const probe = new URL('../www/relaxed-simd.js', import.meta.url).pathname;
    const flagged = spawnSync(process.execPath, [
      '--experimental-wasm-relaxed-simd',
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(probe)}); console.log(globalThis.seglrpRelaxedSimd())`,
    ]);
    assert.equal(String(flagged.stdout).trim(), 'true', String(flagged.stderr));
  }
});

test('cohort pool: every item once, on whichever worker is free; failures reported, dead engines restarted, Cancel stops', async () => {
  const fake = (name) => ({
    name,
    restarts: 0,
    async restart() {
      this.restarts++;
    },
  });
  const pool = new Pool(fake('main'), 3);
  pool.extras = [fake('a'), fake('b')];
  const seen = [];
  const failed = [];
  const by = new Map();
  await pool.map(
    [1, 2, 3, 4, 5, 6, 7],
    async (w, i) => {
      await new Promise((r) => setTimeout(r, i % 3));
      if (i === 4) throw Object.assign(new Error('trap'), { kind: 'fatal' });
      if (i === 6) throw new Error('bad input');
      return i * 10;
    },
    {
      onStart: (i, w) => by.set(i, w.name),
      onResult: (i, r, e) => (e ? failed.push([i, e.message]) : seen.push([i, r])),
    },
  );
  assert.deepEqual(seen.map(([i]) => i).sort(), [1, 2, 3, 5, 7]);
  assert.ok(seen.every(([i, r]) => r === i * 10));
  assert.deepEqual(failed.sort(), [
    [4, 'trap'],
    [6, 'bad input'],
  ]);
  assert.equal(new Set(by.values()).size, 3, 'all three workers took items');
  assert.equal(
    pool.workers.reduce((n, w) => n + w.restarts, 0),
    1,
    'only the fatal failure restarts its worker',
  );
  let stop = false;
  const ran = [];
  await pool.map(
    [1, 2, 3, 4, 5, 6],
    async (w, i) => {
      ran.push(i);
      if (i === 2) stop = true;
    },
    { onResult: () => {}, stopped: () => stop },
  );
  assert.ok(ran.length < 6, `stopped after ${ran.length}`);
});

test('offline: the service worker caches every module of the page', () => {
  const sw = readFileSync(new URL('../sw.js', import.meta.url), 'utf8');
  const modules = readdirSync(new URL('../www/', import.meta.url), { recursive: true }).filter(
    (f) => f.endsWith('.js') && f !== 'bench.js' && !f.startsWith('pkg'),
  );
  assert.ok(modules.length >= 18, modules.join());
  for (const m of modules) assert.ok(sw.includes(`'./www/${m}'`), `${m} is not in sw.js's ASSETS`);
});

test('backend: a hardware GPU runs WebGPU, a software adapter or none the CPU engine; ?backend= wins', async () => {
  const gpu = (info, extra = {}) => ({ requestAdapter: async () => (info ? { info, ...extra } : null) });
  const swiftshader = await webgpuKind(
    gpu({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader Device (Subzero)' }),
  );
  assert.equal(swiftshader.kind, 'software');
  assert.equal(
    (await webgpuKind(gpu({ vendor: 'mesa', device: 'llvmpipe (LLVM 15.0.6, 256 bits)' }))).kind,
    'software',
  );
  assert.equal((await webgpuKind(gpu({ vendor: 'x', isFallbackAdapter: true }))).kind, 'software');
  const nvidia = await webgpuKind(gpu({ vendor: 'nvidia', architecture: 'hopper' }));
  assert.deepEqual(nvidia, { kind: 'hardware', named: 'nvidia hopper' });
  assert.equal((await webgpuKind(gpu(null))).kind, 'none');
  assert.equal((await webgpuKind(undefined)).kind, 'none');
  const failing = {
    requestAdapter: async () => {
      throw new Error('blocked');
    },
  };
  assert.equal((await webgpuKind(failing)).kind, 'none');
  assert.equal(chooseBackend('auto', nvidia).choice, 'auto');
  const soft = chooseBackend('auto', swiftshader);
  assert.equal(soft.choice, 'cpu');
  assert.match(soft.why, /software renderer \(google swiftshader SwiftShader Device \(Subzero\)\).*backend=webgpu/);
  assert.equal(chooseBackend('auto', { kind: 'none' }).choice, 'cpu');
  assert.deepEqual(chooseBackend('webgpu', swiftshader), { choice: 'webgpu', why: 'as asked (backend=webgpu)' });
});
