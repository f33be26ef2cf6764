#!/usr/bin/env bash
# Runs one fuzz target (fuzz/fuzz_targets/TARGET.rs) for SECONDS with libFuzzer through
# cargo fuzz, from its committed seed corpus in fuzz/corpus/TARGET; the inputs it finds go
# to fuzz/work/TARGET (not committed), a crash to fuzz/artifacts/TARGET/ (and the script
# fails: turn it into a regression test, see FUZZING.md).
#
# Usage: scripts/fuzz.sh TARGET SECONDS      e.g. scripts/fuzz.sh assignment 600
# Targets: assignment, outcome, registration (the wire decoders), job_file, checkpoint.
# Installs cargo-fuzz (from crates.io) when it is missing. With a nightly toolchain the
# target is built with AddressSanitizer; without one, on stable with RUSTC_BOOTSTRAP=1 and no
# sanitizer (Rust's own checks still catch out-of-bounds access and overflow in debug).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
if [[ $# -ne 2 ]]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS (targets: $(ls fuzz_targets | sed 's/\.rs$//' | tr '\n' ' '))" >&2
  exit 2
fi
target=$1 seconds=$2
[[ -f fuzz_targets/$target.rs ]] || { echo "fuzz.sh: no target $target in fuzz/fuzz_targets" >&2; exit 2; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly) sanitizer=address
else
  export RUSTC_BOOTSTRAP=1
  toolchain=() sanitizer=none
fi
mkdir -p "work/$target"
echo "fuzz.sh: $target for ${seconds}s (sanitizer: $sanitizer)" >&2
# -rss_limit_mb: a decoder that allocates what a length prefix claims is a finding too.
cargo "${toolchain[@]}" fuzz run --release --sanitizer "$sanitizer" "$target" "work/$target" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1
