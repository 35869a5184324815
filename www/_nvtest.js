import { Niivue, NVImage } from '../node_modules/@niivue/niivue/dist/index.js';
function nifti(data, dims, dtype) {
  const hdr = new ArrayBuffer(352); const v = new DataView(hdr);
  v.setInt32(0, 348, true);
  const d = [dims.length > 3 ? 4 : 3, ...dims, 1, 1, 1, 1].slice(0, 8); d.forEach((x, i) => v.setInt16(40 + 2 * i, x, true));
  v.setInt16(70, dtype === 'f32' ? 16 : 2, true); v.setInt16(72, dtype === 'f32' ? 32 : 8, true);
  [1, 1, 1, 1, 1, 1, 1, 1].forEach((x, i) => v.setFloat32(76 + 4 * i, x, true));
  v.setFloat32(108, 352, true); v.setFloat32(112, 1, true);
  v.setInt16(254, 1, true);
  const A = [[1,0,0,0],[0,1,0,0],[0,0,1,0]];
  A.forEach((row, r) => row.forEach((x, c) => v.setFloat32(280 + 16 * r + 4 * c, x, true)));
  new Uint8Array(hdr, 344, 4).set([110, 43, 49, 0]);
  const out = new Uint8Array(352 + data.byteLength); out.set(new Uint8Array(hdr)); out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 352);
  return out.buffer;
}
const n = 32, vol = new Float32Array(n*n*n); for (let i = 0; i < vol.length; i++) vol[i] = (i % n) + Math.floor(i / n / n);
const rel = new Float32Array(n*n*n); for (let i = 0; i < rel.length; i++) rel[i] = Math.sin(i/100);
const nv = new Niivue({ backColor: [0,0,0,1], show3Dcrosshair: false });
nv.opts.isResizeCanvas = false;
await nv.attachToCanvas(document.getElementById('c'));
await nv.addVolumeFromUrl({ url: 'a.nii', name: 'a.nii', buffer: nifti(vol, [n,n,n], 'f32') });
await nv.addVolumeFromUrl({ url: 'r.nii', name: 'r.nii', buffer: nifti(rel, [n,n,n], 'f32'), colormap: 'warm', colormapNegative: 'winter', cal_min: 0.2, cal_max: 1, cal_minNeg: -1, cal_maxNeg: -0.2, opacity: 0.8 });
nv.setSliceType(nv.sliceTypeMultiplanar);
nv.updateGLVolume(); nv.drawScene();
window.__nv = nv; window.__ok = { gl: !!nv.gl, vols: nv.volumes.length };
