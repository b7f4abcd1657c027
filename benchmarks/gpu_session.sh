#!/usr/bin/env bash
# One prepared session on a GPU machine: the GPU tests, issue #17's throughput on the GPU node, the GPU run of benchmark 4
# (fp16 autocast and fp32), the model families' speed, memory and fp16 check (#22), and the adversarial-vs-control
# training experiment (docs/quality.md).
# Usage: OUT=results DATA=../shared/data/photos bash benchmarks/gpu_session.sh [base-minutes] [stage-minutes]
# Each step is bounded by `timeout` and writes its result as soon as it has one.
set -u
OUT=${OUT:?set OUT to a results folder}
DATA=${DATA:-../shared/data/photos}
BASE_MIN=${1:-2}
STAGE_MIN=${2:-1}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() { echo "=== $(date -u +%T) $*"; }

step gpu; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step tests; timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_models.py tests/test_pipeline.py \
  tests/test_color.py
# issue #17: steady state against the bare decode + encode loop on this node's cores, one actor and four per GPU
# (each with its share of the cores), the merge in torch on the GPU; the CPU run on the same node for scale
step throughput-gpu; timeout 300 python3 benchmarks/throughput.py --images 320 --small 32 --repeats 1 \
  --device cuda --workers 4 --no-write --json "$OUT/throughput-gpu-4.json"
step throughput-gpu-1; timeout 200 python3 benchmarks/throughput.py --images 320 --small 32 --repeats 1 \
  --device cuda --workers 1 --no-write --json "$OUT/throughput-gpu-1.json"
step pipeline-fp16; timeout 150 python3 benchmarks/pipeline_efficiency.py --device cuda --images 64 \
  --megapixels 1 4 --batch-size 16 --threads "$(nproc)" --json "$OUT/pipeline-gpu-fp16.json"
step pipeline-fp32; timeout 100 python3 benchmarks/pipeline_efficiency.py --device cuda --precision fp32 \
  --images 32 --megapixels 1 4 --batch-size 16 --threads "$(nproc)" --json "$OUT/pipeline-gpu-fp32.json"
# issue #22: every model family's speed and CUDA memory at its working size (batches of 8), and whether fp16 keeps
# each published family's output within one 8-bit level of float32 (the rule for running it in fp16 by default)
step model-speed-gpu; timeout 600 python3 benchmarks/model_speed.py --device cuda --batch 8 --no-write \
  --json "$OUT/model-speed-gpu.json"
step fp16; timeout 300 python3 benchmarks/fp16_check.py --json "$OUT/fp16.json"
step train; timeout $(( (BASE_MIN + 2 * STAGE_MIN) * 60 + 200 )) python3 benchmarks/adversarial_experiment.py \
  --data "$DATA" --out "$OUT/train" --base-minutes "$BASE_MIN" --stage-minutes "$STAGE_MIN" \
  --batch-size 32 --crop 224 --temperatures 0.38 0.5 --gammas 0.5 0.75 1.0
step done
