// Region outlines: what the views draw around a region instead of filling it.

/**
 * Voxels of `mask` with a face neighbour outside it: drawn as the region's contour. `axial`:
 * only in-plane neighbours count, so that an axial slice shows a ring even at the region's top
 * and bottom slices (the panels are axial; the main view also slices in the other planes).
 */
export function boundary(mask, [nx, ny, nz], { axial = false } = {}) {
  const out = new Uint8Array(mask.length);
  const sxy = nx * ny;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * y + sxy * z;
        if (!mask[i]) continue;
        const edge =
          x === 0 ||
          y === 0 ||
          x === nx - 1 ||
          y === ny - 1 ||
          !mask[i - 1] ||
          !mask[i + 1] ||
          !mask[i - nx] ||
          !mask[i + nx];
        out[i] = edge || (!axial && (z === 0 || z === nz - 1 || !mask[i - sxy] || !mask[i + sxy])) ? 1 : 0;
      }
    }
  }
  return out;
}
