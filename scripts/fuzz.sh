#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that face the network (fuzz/,
# targets in crates/fuzz-targets): each target runs for SECONDS (default
# 60) with libFuzzer, starting from fuzz/corpus/<target>/ and adding what it
# finds there. A crash is copied to fuzz/regressions/<target>/, which the
# test command replays (crates/fuzz-targets/tests/corpus.rs), and the script
# fails.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Toolchain: only the stable toolchain is certain here; cargo-fuzz needs
# nightly compiler flags (-Zsanitizer=fuzzer instrumentation), so the
# script sets RUSTC_BOOTSTRAP=1 for its own builds only. cargo-fuzz is
# installed with `cargo install --locked` when missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^roost-fuzz$')
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

failed=()
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s =="
  mkdir -p "corpus/$t"
  if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 2>"artifacts-$t.log"; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "artifacts-$t.log" || true
  else
    failed+=("$t")
    mkdir -p "regressions/$t"
    cp artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-* "regressions/$t/" 2>/dev/null || true
    tail -30 "artifacts-$t.log" >&2
  fi
  rm -f "artifacts-$t.log"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; inputs kept in fuzz/regressions/" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${seconds}s each without a crash"
