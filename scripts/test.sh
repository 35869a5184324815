#!/usr/bin/env bash
# `npm test`: every test. Native engine tests, browser engine tests (wasm-bindgen-test in
# headless Chromium, WebGPU and CPU), and the end-to-end page test (Playwright).
source "$(dirname "$0")/lib.sh"
ensure_wasm_target
ensure_wasm_bindgen
ensure_npm
ensure_chromium

step "native tests (cargo test)"
(cd "$ROOT" && "$CARGO" test --release -p seglrp)

step "browser engine tests (wasm-bindgen-test, headless Chromium)"
export WASM_BINDGEN_TEST_TIMEOUT=600
(cd "$ROOT/crate" && "$CARGO" test --release --target wasm32-unknown-unknown -p seglrp --test web \
    --no-default-features --features "$WASM_FEATURES" -- --nocapture)

build_wasm
step "end-to-end page test (Playwright)"
(cd "$ROOT" && "$CARGO" build --release -p seglrp --bin seglrp)
SEGLRP_BIN="$CARGO_TARGET_DIR/release/seglrp" node "$ROOT/tests/e2e.mjs"
step "all tests passed"
