#!/usr/bin/env bash
# Alternate full gradings of the example reference by two checkouts (e.g. this one and a worktree of an older
# commit: `git worktree add /tmp/old REV`), printing each run's wall seconds and the machine-wide busy CPU-seconds
# (/proc/stat, all but idle and iowait). Measure on an otherwise idle machine.
#   DATA_DIR=../shared/datasets benchmarks/compare_grading_cost.sh /tmp/old [rounds]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
old="$1"; rounds="${2:-2}"
python="$here/.venv/bin/python"
export DATA_DIR="$(cd "$here" && cd "${DATA_DIR:-data}" && pwd)"  # absolute: the other checkout runs in its own folder
busy() { awk -v hz="$(getconf CLK_TCK)" 'NR==1{s=0; for(i=2;i<=NF;i++) s+=$i; print (s-$5-$6)/hz}' /proc/stat; }
for round in $(seq "$rounds"); do
  for dir in "$old" "$here"; do
    out="$(mktemp -d)"
    b0=$(busy); t0=$(date +%s.%N)
    (cd "$dir" && "$python" -m autograder grade "$here/examples/submitted/reference" --out "$out" --jobs 1 >/dev/null 2>&1)
    t1=$(date +%s.%N); b1=$(busy)
    total=$(tail -1 "$out/grades.csv" | cut -d, -f9)
    printf '%s round %s: %.1f s wall, %.1f CPU-s busy, total %s\n' "$dir" "$round" "$(echo "$t1 - $t0" | bc)" \
      "$(echo "$b1 - $b0" | bc)" "$total"
    rm -rf "$out"
  done
done
