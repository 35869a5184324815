// Whether this browser's WebAssembly has relaxed SIMD (Chrome 114+), which the faster threaded
// engine (www/pkg-threads-relaxed) is built with: a module holding one f32x4.relaxed_madd is
// validated, never run. A module with instructions its browser lacks does not compile at all,
// hence the probe before the choice. This file is both a classic script (the service worker's
// importScripts) and an ES module (backend.js), so the probe is written once.
globalThis.seglrpRelaxedSimd = () =>
  typeof WebAssembly === 'object' &&
  WebAssembly.validate(
    // (func (result v128) (f32x4.relaxed_madd (f32x4.splat 1.0) (f32x4.splat 1.0) (f32x4.splat 1.0)))
    new Uint8Array([
      0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 28, 1, 26, 0, 67, 0, 0, 128, 63, 253, 19, 67,
      0, 0, 128, 63, 253, 19, 67, 0, 0, 128, 63, 253, 19, 253, 133, 2, 11,
    ]),
  );
