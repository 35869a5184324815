#!/usr/bin/env bash
# `npm start`: install what is missing, build the wasm engine, serve the demo page.
source "$(dirname "$0")/lib.sh"
ensure_wasm_target
ensure_wasm_bindgen
ensure_npm
build_wasm
exec node "$ROOT/scripts/serve.mjs"
