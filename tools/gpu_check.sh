#!/usr/bin/env bash
# The GPU numbers of issue #17 (item 6), as one prepared run of under 10 minutes
# on one H200, for a session that is lent a GPU. Never used by the tests.
#
# It records, into $OUT (or runs/gpu-check):
#   benchmark.{json,md}  OpenAI's CelebA-HQ geometry (configs/celeba256.py, random
#                        weights): encode/decode images/s at precision=highest and at
#                        default (TF32), each with its reconstruction error and
#                        compile time apart; batch sizes 1..256, so the first row that
#                        says "does not fit" bounds the largest batch;
#   sweep.{json,md}      the one-call sweep vs the per-alpha and per-image loops at
#                        64x64 and at the full 256x256 geometry (depth 32, width 512);
#   train.md             issue #25: training steps/s at precision default (TF32) vs
#                        highest, each with a float32 and a bfloat16 coupling
#                        conditioner (tools/benchmark_train.py), 64x64 at batch 64;
#   reenact/, reenact.json  issue #24: the default reenactment job (72 frames, 3 targets,
#                        demo Glow) and its speed: frames/s end to end and for the one
#                        compiled sweep alone. Needs PyAV: carry its wheel in .whl too
#                        (pip download --no-deps --only-binary=:all: --python-version 3.12
#                        -d .whl av).
#
# Parts: `bash tools/gpu_check.sh [bench] [sweep] [train] [reenact]` (default: bench
# sweep, which fill one 10-minute call; run `train reenact` as a second call).
#
# On the device machine python3 has JAX with CUDA, flax, optax, orbax and absl, but
# not ml-collections: carry its wheel (the device tool's README says how), e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ml-collections
#   run(command="bash tools/gpu_check.sh", carry=[".whl"], timeout_s=590)
# A CPU dry run of the same steps on tiny settings: GPU_CHECK_DRY_RUN=1 bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
out="${OUT:-runs/gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

parts="${*:-bench sweep}"
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
  config=configs/celeba256.py:small batches=1,2 sweep=(--sizes=64 --width64=32 --chunk_size=8)
  train=(--batch_size=2 --steps=1) reenact=configs/reenact.py:smoke
  limit_bench=300 limit_sweep=300 limit_train=300 limit_reenact=300
else
  config=configs/celeba256.py batches=1,8,32,64,128,256
  sweep=(--sizes=64,256 --depth256=32 --width256=512 --chunk_size=32)
  train=(--batch_size=64 --steps=10) reenact=configs/reenact.py
  limit_bench=330 limit_sweep=200 limit_train=360 limit_reenact=200
fi

python3 -c "import jax; print('devices:', jax.devices())" | tee "$out/devices.txt"
if [[ " $parts " == *" bench "* ]]; then
  timeout "$limit_bench" python3 -m tools.benchmark --config="$config" --batch_sizes="$batches" \
    --precisions=highest,default --repeats=3 --json="$out/benchmark.json" | tee "$out/benchmark.md"
fi
if [[ " $parts " == *" sweep "* ]]; then
  timeout "$limit_sweep" python3 -m tools.benchmark_sweep "${sweep[@]}" --out="$out/sweep.json" \
    | tee "$out/sweep.md"
fi
if [[ " $parts " == *" train "* ]]; then
  timeout "$limit_train" python3 -m tools.benchmark_train --config=configs/celeba256.py:small \
    "${train[@]}" --precisions=default,highest --conditioner_dtypes=float32,bfloat16 \
    | tee "$out/train.md"
fi
if [[ " $parts " == *" reenact "* ]]; then
  timeout "$limit_reenact" python3 run.py --config="$reenact" --workdir="$out/reenact" \
    --compilation_cache= --config.progress=False
  python3 -c "import json, sys; json.dump(json.load(open(sys.argv[1]))['speed'], sys.stdout, indent=1)" \
    "$out/reenact/reenact.json" | tee "$out/reenact.json"
fi
