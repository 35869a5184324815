#!/usr/bin/env bash
# The benchmarks (docs/performance.md): each installs and builds what it needs, then prints a table.
#   npm run bench:native    cargo bench (forward, LRP pass, two-pass region vs per-voxel; CPU, and
#                           burn-wgpu when a GPU adapter is found), then the nnU-Net-shaped network
#   npm run bench:browser   bench.html in headless Chromium (WebGPU and CPU wasm, three sizes)
#   npm run bench:zennit    Zennit + PyTorch and ONNX Runtime vs the native engine, same weights and volume
# Extra arguments go to the benchmark (e.g. `npm run bench:browser -- --sizes 64x64x32 --clicks 5`).
source "$(dirname "$0")/lib.sh"
what=${1:?native, browser or zennit}; shift
case "$what" in
  native)
    (cd "$ROOT" && "$CARGO" bench -p seglrp --bench lrp -- "$@")
    # An nnU-Net 3d_fullres-shaped network at 128³ (several minutes on 2 cores).
    (cd "$ROOT" && "$CARGO" bench -p seglrp --bench nnunet -- "$@") ;;
  browser)
    ensure_wasm_target; ensure_wasm_bindgen; ensure_npm; ensure_chromium; build_wasm
    node "$ROOT/scripts/bench-browser.mjs" "$@" ;;
  zennit)
    ensure_python
    (cd "$ROOT" && "$CARGO" build --release -p seglrp --bin seglrp)
    SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/scripts/bench_zennit.py" "$@" ;;
  *) echo "unknown benchmark $what: native, browser or zennit" >&2; exit 2 ;;
esac
