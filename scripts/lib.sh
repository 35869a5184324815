# Shared set-up for `npm start` and `npm test`: every step installs what is missing and
# skips what is there, without prompts. Source it; then call the ensure_* functions.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEGLRP_HOME=${SEGLRP_HOME:-$HOME/.cache/seglrp}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$SEGLRP_HOME"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
CARGO=${CARGO:-cargo}
# Cargo features of the browser build: WebGPU and the flex CPU backend (ndarray, 10× slower
# here, was dropped from it: 0.32 MB less to download; docs/performance.md).
# onnx: the page reads ONNX models with the same importer as the command line.
WASM_FEATURES=webgpu,cpu-flex,cpu-simd,onnx,pth
# wasm SIMD for all of the engine, not only gemm's kernels (conv.rs, burn-flex's element-wise
# loops): every browser with WebGPU has it (Chrome 91, Firefox 89, Safari 16.4).
WASM_RUSTFLAGS="-C target-feature=+simd128"
# Debian's rustc (1.96) no longer links wasm32 modules with --allow-undefined as rustup's 1.95
# does; openjp2 also builds a module of its own (its crate types include cdylib) that needs
# libc's malloc, which this crate supplies only to its own module (io/libc_shim.rs).
WASM_DEBIAN_LINK="-C link-arg=--allow-undefined"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$WASM_RUSTFLAGS"

step() { echo "[seglrp] $*" >&2; }

ensure_apt() {
  local missing=()
  for p in "$@"; do
    # "installed", not merely known to dpkg (a removed package keeps its config files)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The wasm32 target: rustup's where it can be had, otherwise Debian's rustc-web with a std
# built from rust-web-src (README, "Run it"). SEGLRP_TOOLCHAIN=debian|rustup forces one.
ensure_wasm_target() {
  if [ "${SEGLRP_TOOLCHAIN:-auto}" != debian ] && command -v rustup >/dev/null 2>&1; then
    if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
      CARGO=cargo; return 0
    fi
    if [ ! -f "$SEGLRP_HOME/rustup-cannot-add-wasm32" ]; then
      step "trying: rustup target add wasm32-unknown-unknown"
      if timeout 90 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then CARGO=cargo; return 0; fi
      [ "${SEGLRP_TOOLCHAIN:-auto}" = rustup ] && { echo "rustup target add wasm32-unknown-unknown failed" >&2; return 1; }
      step "rustup cannot download the wasm32 std here; using Debian's rustc-web instead"
      touch "$SEGLRP_HOME/rustup-cannot-add-wasm32"
    fi
  fi
  ensure_apt rustc-web cargo-web rust-web-src lld
  bash "$ROOT/scripts/wasm-sysroot.sh" "$SEGLRP_HOME/sysroot"
  # One toolchain (1.96) for native and wasm builds, so the two share host artefacts.
  CARGO=/usr/bin/cargo
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/wasm-ld
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--sysroot=$SEGLRP_HOME/sysroot $WASM_RUSTFLAGS $WASM_DEBIAN_LINK"
}

# wasm-bindgen-cli must be exactly the wasm-bindgen in Cargo.lock.
ensure_wasm_bindgen() {
  local v
  v=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3}' "$ROOT/Cargo.lock")
  export PATH="$SEGLRP_HOME/tools/bin:$PATH"
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $v\$"; then
    step "building wasm-bindgen-cli $v from crates.io (about 3 min, once)"
    "$CARGO" install -q wasm-bindgen-cli --version "$v" --root "$SEGLRP_HOME/tools" --force
  fi
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$SEGLRP_HOME/tools/bin/wasm-bindgen-test-runner"
}

ensure_npm() {
  local stamp="$ROOT/node_modules/.seglrp-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$ROOT/package-lock.json" "$stamp"; then
    step "installing npm packages"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ROOT/package-lock.json" "$stamp"
  fi
}

ensure_chromium() {
  ensure_apt chromium chromium-driver
  export CHROMEDRIVER=/usr/bin/chromedriver CHROMIUM=/usr/bin/chromium
}

# A Vulkan driver for `seglrp --gpu` tests: the machine's own where it has one, otherwise Mesa's
# lavapipe (Vulkan on the CPU: slow, but the same burn-wgpu code path as a real GPU).
ensure_vulkan() {
  if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    ensure_apt mesa-vulkan-drivers libvulkan1
  fi
}

# The threaded CPU engine (www/pkg-threads): the CPU features, rayon on Web Workers
# (wasm-bindgen-rayon), shared memory (atomics; up to 4 GiB, as the single-threaded engine).
WASM_THREADS_FEATURES=cpu-flex,wasm-threads,onnx,pth
# (The std is built with the same features; the stamp of its sysroot records them.)
WASM_THREADS_STD="-Ctarget-feature=+atomics,+bulk-memory,+mutable-globals,+simd128"
# The module imports its memory, shared, so that every worker runs on the same one (wasm-bindgen
# sees the shared memory and adds the thread start-up); the TLS exports let each thread set up
# its own thread-locals. Stated here: Debian's rustc 1.96 does not add them for +atomics.
WASM_THREADS_RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 \
-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
-C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align \
-C link-arg=--export=__tls_base $WASM_DEBIAN_LINK"

# wasm-bindgen's output of RAW into www/NAME, optimised by binaryen (EXTRA: wasm-opt features).
bind_wasm() {
  local raw=$1 name=$2 extra=${3:-} out="$ROOT/www/$2"
  if [ ! -f "$out/.built" ] || [ "$raw" -nt "$out/.built" ]; then
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    wasm-bindgen --target web --out-dir "$out.tmp" "$raw"
    # Debian's wasm-opt (binaryen 108) breaks this wasm; npm's binaryen 132 is the one to use.
    "$ROOT/node_modules/.bin/wasm-opt" "${SEGLRP_WASM_OPT:--O1}" --strip-debug --enable-reference-types --enable-bulk-memory \
      --enable-multivalue --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals $extra \
      "$out.tmp/seglrp_bg.wasm" -o "$out.tmp/seglrp_bg.wasm"
    rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/.built"
    step "www/$name/seglrp_bg.wasm: $(stat -c %s "$out/seglrp_bg.wasm") bytes, $(gzip -9 -c "$out/seglrp_bg.wasm" | wc -c) gzipped"
  fi
}

# Builds the browser engines: www/pkg (WebGPU and the single-threaded CPU engine) and
# www/pkg-threads (the CPU engine on every core, for cross-origin isolated pages).
build_wasm() {
  step "building the wasm engine (first build: ~10 min; later: seconds)"
  (cd "$ROOT" && "$CARGO" build --release --lib --target wasm32-unknown-unknown -p seglrp \
      --no-default-features --features "$WASM_FEATURES")
  bind_wasm "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/seglrp.wasm" pkg
  build_wasm_threads
  node "$ROOT/scripts/samples.mjs"
}

# Shared memory needs a std built with atomics, which neither rustup nor Debian ships: it is
# built from Debian's rust-web-src with Debian's rustc-web (on every machine, whichever route
# gave the single-threaded engine), in a target folder of its own. Two builds: www/pkg-threads
# (wasm simd128, every browser with shared memory) and www/pkg-threads-relaxed (the conv loop
# with relaxed-SIMD multiply-adds, for browsers that validate relaxed SIMD: Chrome 114+). A
# module cannot hold instructions its browser lacks, hence two. They share one target folder:
# their cargo features differ for this crate only, so a switch recompiles it alone (~1 min).
build_wasm_threads() {
  ensure_apt rustc-web cargo-web rust-web-src lld
  bash "$ROOT/scripts/wasm-sysroot.sh" "$SEGLRP_HOME/sysroot-threads" "$WASM_THREADS_STD"
  build_threads_variant pkg-threads "" ""
  build_threads_variant pkg-threads-relaxed ,wasm-relaxed-simd --enable-relaxed-simd
}

# One threaded build: NAME (www/NAME), FEATURES (cargo features beside the threaded ones, from
# a comma), OPT (wasm-opt features beside the threaded ones).
build_threads_variant() {
  local name=$1 features=$2 opt=$3
  step "building the threaded wasm engine www/$name (first build: ~10 min; later: seconds)"
  # RUSTC_BOOTSTRAP: `atomics` is an unstable target feature, which a stable rustc applies
  # without setting cfg(target_feature = "atomics"), and wasm-bindgen-rayon requires that cfg.
  (cd "$ROOT" && RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-threads" \
    RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/wasm-ld \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--sysroot=$SEGLRP_HOME/sysroot-threads $WASM_THREADS_RUSTFLAGS" \
    /usr/bin/cargo build --release --lib --target wasm32-unknown-unknown -p seglrp \
      --no-default-features --features "$WASM_THREADS_FEATURES$features")
  bind_wasm "$CARGO_TARGET_DIR/wasm-threads/wasm32-unknown-unknown/release/seglrp.wasm" "$name" \
    "--enable-threads $opt"
}

# A Python venv for the reference checks: nibabel (NIfTI as the field reads it), PyTorch and
# Zennit (LRP as the field computes it), nnU-Net (the networks people train, and the model
# folders they bring). torch comes with its CUDA libraries (~5 GB, ~2 min
# here): `pip install --no-deps torch` gives a torch 2.15 that cannot import without them.
ensure_python() {
  local venv="$SEGLRP_HOME/venv" want="numpy==2.3.5 nibabel==5.4.2 torch==2.15.0 zennit==0.5.1 nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 monai==1.6.1 safetensors==0.8.0 onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 pydicom==3.0.2 captum==0.9.0"
  if [ ! -x "$venv/bin/python" ]; then
    step "creating the Python venv $venv"
    python3 -m venv "$venv"
  fi
  if [ "$(cat "$venv/.seglrp-packages" 2>/dev/null)" != "$want" ]; then
    step "installing into the venv: $want"
    "$venv/bin/pip" install -q --disable-pip-version-check $want
    echo "$want" > "$venv/.seglrp-packages"
  fi
  PYTHON="$venv/bin/python"
}

# Real NIfTI and DICOM files that registry packages ship (nothing of theirs is committed here):
# nibabel's, nilearn's, dipy's and pydicom's test and template data, unpacked from their wheels
# into $SEGLRP_HOME/testdata.
ensure_test_data() {
  local dir="$SEGLRP_HOME/testdata" wheels="nibabel==5.4.2 nilearn==0.14.1 dipy==1.12.1 pydicom==3.0.2"
  export SEGLRP_TESTDATA="$dir"
  [ "$(cat "$dir/.seglrp-wheels" 2>/dev/null)" = "$wheels" ] && return 0
  step "fetching test NIfTI and DICOM files from PyPI wheels: $wheels"
  rm -rf "$dir" && mkdir -p "$dir/wheels"
  # One fixed platform, so that every machine gets the same files.
  pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 -d "$dir/wheels" $wheels
  (cd "$dir" && for w in wheels/*.whl; do
     unzip -q -o "$w" 'nibabel/tests/data/*' 'nibabel/nicom/tests/data/*' 'nilearn/datasets/data/*.nii.gz' \
       'dipy/data/files/*.nii*' 'pydicom/data/test_files/*' 2>/dev/null || true
   done)
  echo "$wheels" > "$dir/.seglrp-wheels"
}
