// In-memory NIfTI-1 files for NiiVue, and voxel ↔ world conversions with the study's affine.
// The voxels never leave the page: the bytes go straight from here into NiiVue.

/** A NIfTI-1 file of `data` (Uint8Array or Float32Array, x fastest) on `dims` with `affine` (4×4 rows). */
export function niftiBytes(data, dims, affine) {
  const header = new ArrayBuffer(352);
  const v = new DataView(header);
  v.setInt32(0, 348, true);
  [3, dims[0], dims[1], dims[2], 1, 1, 1, 1].forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  const float = data instanceof Float32Array;
  v.setInt16(70, float ? 16 : 2, true); // datatype: float32 or uint8
  v.setInt16(72, float ? 32 : 8, true);
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c]));
  [1, ...spacing, 1, 1, 1, 1].forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, 352, true); // vox_offset
  v.setFloat32(112, 1, true); // scl_slope
  v.setInt16(254, 1, true); // sform_code: scanner
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, affine[r][c], true);
  new Uint8Array(header, 344, 4).set([110, 43, 49, 0]); // "n+1\0"
  const out = new Uint8Array(352 + data.byteLength);
  out.set(new Uint8Array(header));
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 352);
  return out.buffer;
}

/** World millimetres of voxel `v`. */
export const toWorld = (A, v) => [0, 1, 2].map((r) => A[r][0] * v[0] + A[r][1] * v[1] + A[r][2] * v[2] + A[r][3]);

/** The voxel (rounded, inside `dims`) at world position `mm`. */
export function toNative(A, dims, mm) {
  const [a, b, c] = A;
  const m = [
    [a[0], a[1], a[2]],
    [b[0], b[1], b[2]],
    [c[0], c[1], c[2]],
  ];
  const det =
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const inv = [
    [
      m[1][1] * m[2][2] - m[1][2] * m[2][1],
      m[0][2] * m[2][1] - m[0][1] * m[2][2],
      m[0][1] * m[1][2] - m[0][2] * m[1][1],
    ],
    [
      m[1][2] * m[2][0] - m[1][0] * m[2][2],
      m[0][0] * m[2][2] - m[0][2] * m[2][0],
      m[0][2] * m[1][0] - m[0][0] * m[1][2],
    ],
    [
      m[1][0] * m[2][1] - m[1][1] * m[2][0],
      m[0][1] * m[2][0] - m[0][0] * m[2][1],
      m[0][0] * m[1][1] - m[0][1] * m[1][0],
    ],
  ];
  const d = [mm[0] - a[3], mm[1] - b[3], mm[2] - c[3]];
  return [0, 1, 2].map((r) => {
    const x = (inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2]) / det;
    return Math.min(dims[r] - 1, Math.max(0, Math.round(x)));
  });
}
