#!/usr/bin/env bash
# Fuzz the NIfTI reader: `bash scripts/fuzz.sh [SECONDS]` (default 600). Needs cargo-fuzz
# (installed here if missing) and runs on stable Rust through RUSTC_BOOTSTRAP. The seed corpus
# is made from the real files of the test data (scripts/lib.sh) and SegLRP's own writer;
# crashes land in crate/fuzz/artifacts/.
source "$(dirname "$0")/lib.sh"
SECONDS_TO_RUN=${1:-600}
ensure_test_data
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
corpus="$SEGLRP_HOME/fuzz-corpus"
mkdir -p "$corpus"
# Small real files, raw and gzipped; the reader's own output; NIfTI-2 and a pair header.
for f in nibabel/tests/data/standard.nii.gz nibabel/tests/data/example_nifti2.nii.gz \
         nibabel/tests/data/nifti1.hdr nibabel/tests/data/nifti2.hdr dipy/data/files/small_25.nii.gz; do
  cp "$SEGLRP_TESTDATA/$f" "$corpus/$(basename "$f")"
  case "$f" in *.gz) gzip -dc "$SEGLRP_TESTDATA/$f" > "$corpus/$(basename "$f" .gz)" ;; esac
done
cd "$ROOT/crate"
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$SEGLRP_HOME/fuzz-target"
cargo fuzz run --sanitizer none read_nifti "$corpus" -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=131072 -rss_limit_mb=3072 -timeout=10 -print_final_stats=1
