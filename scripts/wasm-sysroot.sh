#!/usr/bin/env bash
# Builds the wasm32-unknown-unknown std from Debian's rust-web-src into a private sysroot,
# for machines where `rustup target add` cannot download, and for the threaded browser engine
# (a std with shared memory, which no prebuilt std has). Idempotent: skipped when the sysroot
# already matches the installed /usr/bin/rustc and the flags.
# Usage: wasm-sysroot.sh SYSROOT_DIR [RUSTFLAGS]
set -euo pipefail
SYSROOT=${1:?usage: wasm-sysroot.sh SYSROOT_DIR [RUSTFLAGS]}
FLAGS=${2:-}
LIB=$SYSROOT/lib/rustlib/wasm32-unknown-unknown/lib
STAMP=$SYSROOT/rustc-version
want="$(/usr/bin/rustc --version)${FLAGS:+ $FLAGS}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && ls "$LIB"/libstd-*.rlib >/dev/null 2>&1; then
  exit 0
fi
echo "[setup] building the wasm32 std for $want into $SYSROOT (about 30 s)"
work=$(mktemp -d)
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "stdbuild-dummy"
version = "0.0.0"
edition = "2021"
[lib]
crate-type = ["rlib"]
[profile.release]
opt-level = 3
debug = false
TOML
echo 'pub fn f() -> usize { std::vec![1u8].len() }' > "$work/src/lib.rs"
# -Cembed-bitcode=yes: LTO release profiles need bitcode in the std rlibs.
# Its own target dir: a CARGO_TARGET_DIR set by the caller would take the rlibs elsewhere.
( cd "$work" && CARGO_TARGET_DIR="$work/target" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Cembed-bitcode=yes $FLAGS" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/wasm-ld \
  /usr/bin/cargo build -q --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort,test )
mkdir -p "$LIB"; rm -f "$LIB"/*.rlib
cp "$work"/target/wasm32-unknown-unknown/release/deps/*.rlib "$LIB"/
rm -f "$LIB"/libstdbuild_dummy-*.rlib
ln -sfn /usr/lib/rustlib/x86_64-unknown-linux-gnu "$SYSROOT/lib/rustlib/x86_64-unknown-linux-gnu"
ln -sfn /usr/lib/rustlib/src "$SYSROOT/lib/rustlib/src"
echo "$want" > "$STAMP"
rm -rf "$work"
