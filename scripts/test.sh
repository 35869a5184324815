#!/usr/bin/env bash
# `npm test`: every test. Native engine tests, browser engine tests (wasm-bindgen-test in
# headless Chromium, WebGPU and CPU), NIfTI parity with nibabel on real files, DICOM series
# against nibabel, LRP parity with Zennit, a cohort as a Slurm job array, the page's modules
# (node --test) and the end-to-end page test (Playwright).
source "$(dirname "$0")/lib.sh"
ensure_wasm_target
ensure_wasm_bindgen
ensure_npm
ensure_chromium
ensure_vulkan
ensure_python
ensure_test_data

step "formatting: cargo fmt (rustfmt.toml, 120 columns) and Prettier (.prettierrc.json)"
# rustup's cargo/rustfmt (on PATH) even where $CARGO is Debian's wasm toolchain: one formatter.
(cd "$ROOT" && cargo fmt --all -- --check && rustfmt --check --edition 2021 crate/fuzz/fuzz_targets/*.rs) \
  || { echo "Rust sources are not formatted: run \`cargo fmt --all\`" >&2; exit 1; }
# rustfmt leaves long string literals and comments alone: the width is checked here too.
long=$(cd "$ROOT" && LC_ALL=C.UTF-8 grep -nP '^.{121,}$' $(git ls-files '*.rs') || true)
[ -z "$long" ] || { echo "lines over 120 columns:" >&2; echo "$long" >&2; exit 1; }
"$ROOT/node_modules/.bin/prettier" --check "$ROOT" >/dev/null \
  || { "$ROOT/node_modules/.bin/prettier" --list-different "$ROOT" >&2; echo "JS is not formatted: run \`npx prettier --write .\`" >&2; exit 1; }

step "native tests (cargo test)"
(cd "$ROOT" && "$CARGO" test --release -p seglrp)

step "browser engine tests (wasm-bindgen-test, headless Chromium)"
export WASM_BINDGEN_TEST_TIMEOUT=600
(cd "$ROOT/crate" && "$CARGO" test --release --target wasm32-unknown-unknown -p seglrp --test web \
    --no-default-features --features "$WASM_FEATURES" -- --nocapture)

(cd "$ROOT" && "$CARGO" build --release -p seglrp --bin seglrp)
step "NIfTI parity with nibabel on real files (Python)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/tests/nifti_parity.py"
step "DICOM series against nibabel and pydicom on real files (Python)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/tests/dicom_parity.py"
step "LRP parity with Zennit 0.5.1 on the PyTorch twin (Python)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/tests/lrp_parity.py"
step "attribution methods beside LRP against Captum and Zennit (Python)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/tests/faithfulness_parity.py"
step "graph engine parity with PyTorch and Zennit on nnU-Net model folders and MONAI networks (Python)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" "$PYTHON" "$ROOT/tests/graph_parity.py"

step "cohort split across a Slurm job array (single-node Slurm from Debian's packages)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" bash "$ROOT/tests/slurm.sh"

step "page modules (node --test)"
node --test "$ROOT/tests/www.test.mjs"

build_wasm
step "end-to-end page test (Playwright)"
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" SEGLRP_PYTHON="$PYTHON" node "$ROOT/tests/e2e.mjs"
step "all tests passed"
