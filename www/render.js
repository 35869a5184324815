// Drawing axial slices. Rows are flipped so that +y (anterior in RAS files) points up.

export const SEQUENCES = ['T2', 'T1 plain', 'T1 20 s', 'T1 60 s', 'T1 120 s', 'T1 15 min'];

/** Robust display window of one channel (2nd..98th percentile of its non-zero voxels). */
export function windowOf(channel) {
  const v = Array.from(channel.filter((x) => x !== 0)).sort((a, b) => a - b);
  if (v.length === 0) return [0, 1];
  const lo = v[Math.floor(v.length * 0.02)], hi = v[Math.floor(v.length * 0.98)];
  return [lo, hi > lo ? hi : lo + 1];
}

export const scaleFor = (dims) => Math.max(2, Math.floor(384 / Math.max(dims[0], dims[1])));

/** Canvas pixel -> voxel [x, y] on the slice; the inverse of the drawing below. */
export function pixelToVoxel(canvas, dims, clientX, clientY) {
  const r = canvas.getBoundingClientRect();
  const x = Math.floor(((clientX - r.left) / r.width) * dims[0]);
  const row = Math.floor(((clientY - r.top) / r.height) * dims[1]);
  return [Math.min(dims[0] - 1, Math.max(0, x)), Math.min(dims[1] - 1, Math.max(0, dims[1] - 1 - row))];
}

/**
 * Draws slice z of `channel` (grey) with optional overlays:
 * mask (Uint8Array, red), label (Uint8Array, yellow outline), region (Uint8Array, green
 * outline), signed relevance (Float32Array, red +, blue -, scaled by `rmax`), and a marker at
 * voxel `mark` = [x, y].
 */
export function drawSlice(canvas, dims, z, channel, win, { mask, label, region, relevance, rmax, mark } = {}) {
  const [nx, ny] = dims;
  const s = scaleFor(dims);
  canvas.width = nx; canvas.height = ny;
  canvas.style.width = `${nx * s}px`; canvas.style.height = `${ny * s}px`;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(nx, ny);
  const base = z * nx * ny;
  const [lo, hi] = win;
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = base + x + nx * y;
      const o = 4 * (x + nx * (ny - 1 - y));
      let g = Math.max(0, Math.min(1, (channel[i] - lo) / (hi - lo))) * 255;
      let [r, gg, b] = [g, g, g];
      if (mask && mask[i]) { r = 0.55 * r + 0.45 * 255; gg *= 0.55; b *= 0.55; }
      if (relevance && rmax > 0) {
        const a = Math.min(1, Math.abs(relevance[i]) / rmax);
        const c = relevance[i] > 0 ? [255, 40, 0] : [0, 120, 255];
        r = (1 - a) * r + a * c[0]; gg = (1 - a) * gg + a * c[1]; b = (1 - a) * b + a * c[2];
      }
      // Outlines on top of everything, so that the region stays visible on the relevance panels.
      const edge = (m) => m && m[i] && (x === 0 || y === 0 || x === nx - 1 || y === ny - 1 ||
          !m[i - 1] || !m[i + 1] || !m[i - nx] || !m[i + nx]);
      if (edge(label)) { r = 255; gg = 230; b = 0; }
      if (edge(region)) { r = 0; gg = 255; b = 80; }
      img.data[o] = r; img.data[o + 1] = gg; img.data[o + 2] = b; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  if (mark) {
    ctx.strokeStyle = '#0f0'; ctx.lineWidth = 0.5;
    ctx.strokeRect(mark[0] - 1, ny - 2 - mark[1], 3, 3);
  }
}
