#!/usr/bin/env bash
# The CPU quick benchmark behind docs/performance.md: PT-DiT-S/B (fast paths, lean block, full-attention mode)
# against a scaled-down PixArt-alpha, 256^2 to 1024^2, fp32, batch 2. About 5 minutes on one busy core.
# usage: benchmarks/run_quick_cpu.sh [threads]   (default: all cores; 1 gives steadier numbers on a busy machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=benchmarks/results
THREADS=${1:-$(nproc)}
TIMER=$([ "$THREADS" = 1 ] && echo process || echo wall)  # CPU time is only meaningful with one thread
"$PY" -m ptdit.bench --quick --threads "$THREADS" --cpu-timer "$TIMER" \
  --json "$OUT/cpu_quick.json" --markdown "$OUT/cpu_quick.md" --plot "$OUT/cpu_quick.png"
"$PY" benchmarks/fastpaths_cpu.py --compile --threads "$THREADS" --cpu-timer "$TIMER" --json "$OUT/cpu_fastpaths.json" --markdown "$OUT/cpu_fastpaths.md"
"$PY" benchmarks/cpu_attention.py --threads "$THREADS" --cpu-timer "$TIMER" --steps 3 --json "$OUT/cpu_attention.json" --markdown "$OUT/cpu_attention.md"
"$PY" benchmarks/make_performance_doc.py
