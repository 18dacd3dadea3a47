#!/usr/bin/env bash
# Run the MuJoCo Warp GPU benchmark and paper-preset training iterations on a machine with Python 3.12, a CUDA torch and no internet.
#
# The packages it lacks (mujoco-core 4.0.0, mujoco-warp 4.0.0, warp-lang 1.19.0, rsl-rl-lib and
# its small dependencies) are installed into $SITE (default /tmp/site) without any index; nothing
# is installed when they already import from $SITE. warp-lang's wheel (149 MB) is more than one
# device call may carry, so its files (minus the CPU-only compiler warp-clang.so) travel as an
# xz'd tar split in two: .gpu_a/warp_gpu.part-aa and .gpu_b/warp_gpu.part-ab, with the other
# wheels in .gpu_b/ (also tyro, docstring-parser, typeguard, gymnasium and farama-notifications for
# the `dhal` CLI, which the GPU image lacks). A first call carrying .gpu_a (and .gpu_cache, below,
# if both fit in one call's 64 MiB; else a call of its own) runs `bash scripts/gpu/run.sh --stage`,
# which keeps them in /tmp on the warm machine; the next call, within the warm window, carries
# .gpu_b and runs this script without --stage.
# The repo is not pip-installed: PYTHONPATH=$SITE:<repo> makes `dhal` import from the checkout.
# Arguments after the options go to scripts/gpu/bench_gpu.py (e.g. --sizes 1024 4096 8192).
# Then `dhal train --preset paper` for TRAIN_BUDGET seconds (default 150; TRAIN_OVERRIDES, e.g.
# "sim.compile=False", are its env overrides) and `dhal eval` of its
# checkpoint (EVAL_EPISODES, default 64; at most EVAL_BUDGET seconds, default 120). Results in $OUT (default ./gpu_out): gpu_bench.json,
# gpu_bench.log, results.tar (eval/ with eval.json and plots, the run's config.json,
# train_gpu.json, training.png, gpu_profile.txt and gpu_trace_<variant>.json.gz (Chrome traces of
# the profiled steps, for chrome://tracing or Perfetto), the TensorBoard events) and the checkpoint in
# parts, model_<k>.pt.part-aa, -ab, ...
# Compiling MuJoCo Warp's kernels takes over two minutes of a cold machine. Unless the --stage
# call carried them, the compiled kernels come back as $OUT/warp_kernels.tar.xz.part-aa, -ab (about
# 12 MB in all; xz, as gzip's 16 MB with part a and the tree passed one call's 64 MiB); `cat` them
# into .gpu_cache/warp_kernels.tar.xz (git-ignored) and the --stage call
# carries it too, so the next session starts with them (sm_90: H100 and H200).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO" || exit 1
SITE="${SITE:-/tmp/site}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu TRAIN_PRESET=smoke: a dry run of the whole script on CPU Warp
TRAIN_PRESET="${TRAIN_PRESET:-paper}"
HOLD="${HOLD:-/tmp/dhal_gpu_stage}"
# CALL_LIMIT: the device call's timeout_s. Training and evaluation are then cut to end, packed,
# before it (scripts/gpu/budget.py); 0 (default): TRAIN_BUDGET and EVAL_BUDGET as given.
CALL_LIMIT="${CALL_LIMIT:-0}"
SCRIPT_START=$(date +%s)
export OUT="${OUT:-$REPO/gpu_out}"
mkdir -p "$OUT"

if [ "${1:-}" = "--stage" ]; then
  mkdir -p "$HOLD"
  staged=0
  [ -s .gpu_a/warp_gpu.part-aa ] && cp .gpu_a/warp_gpu.part-aa "$HOLD/" && staged=1
  # the kernel cache may come in its own --stage call when both would pass one call's 64 MiB
  [ -s .gpu_cache/warp_kernels.tar.xz ] && cp .gpu_cache/warp_kernels.tar.xz "$HOLD/" && staged=1
  if [ "$staged" = 0 ]; then
    echo "--stage: nothing to stage; carry .gpu_a (warp-lang, part a) and/or .gpu_cache (Warp kernels)" >&2
    exit 2
  fi
  ls -la "$HOLD"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
  echo "staged; now run scripts/gpu/run.sh carrying .gpu_b within the warm window"
  exit 0
fi

have_packages() {
  PYTHONPATH="$SITE" python3 -c "import warp, mujoco, mujoco_warp" >/dev/null 2>&1
}

install_packages() {
  if [ -z "${FORCE_INSTALL:-}" ] && have_packages; then
    echo "packages already in $SITE"
    return 0
  fi
  mkdir -p "$SITE"
  local aa=""
  for candidate in .gpu_a/warp_gpu.part-aa "$HOLD/warp_gpu.part-aa"; do
    [ -s "$candidate" ] && aa="$candidate" && break
  done
  if [ -z "$aa" ] || [ ! -s .gpu_b/warp_gpu.part-ab ]; then
    echo "no packages: need part a (from a '--stage' call on this warm machine) and .gpu_b carried" \
      "now. If the machine was released between the calls, run both calls again." >&2
    return 1
  fi
  echo "installing warp from $aa + .gpu_b/warp_gpu.part-ab and .gpu_b/*.whl into $SITE"
  cat "$aa" .gpu_b/warp_gpu.part-ab | xz -dc | tar -x -C "$SITE" || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .gpu_b/*.whl || return 1
  have_packages
}

{
  echo "== $(date -u +%FT%TZ) $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  start=$(date +%s)
  install_packages || { echo "package installation failed" >&2; exit 3; }
  echo "packages ready in $(( $(date +%s) - start ))s"
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
  python3 -c "import sys, torch, numpy, mujoco, warp, mujoco_warp; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'mujoco', mujoco.__version__, 'warp', warp.__version__, 'mujoco_warp', mujoco_warp.__version__)"
  warp_cache="${WARP_CACHE_PATH:-$HOME/.cache/warp}"  # Warp's own default and override
  if [ -s "$HOLD/warp_kernels.tar.xz" ] && [ ! -d "$warp_cache" ]; then
    mkdir -p "$warp_cache" && tar -xJf "$HOLD/warp_kernels.tar.xz" -C "$warp_cache" && echo "restored the Warp kernel cache"
  fi
  python3 -u scripts/gpu/bench_gpu.py --device "$DEVICE" "$@"
  bench_status=$?
  if [ -d "$warp_cache" ] && [ ! -s "$HOLD/warp_kernels.tar.xz" ]; then  # for the next session's --stage call
    XZ_OPT="-9 -T0" tar -cJf /tmp/warp_kernels.tar.xz -C "$warp_cache" . \
      && split -b 9M /tmp/warp_kernels.tar.xz "$OUT/warp_kernels.tar.xz.part-"
  fi
  # Then paper-preset training for TRAIN_BUDGET seconds and a deterministic evaluation of the
  # final checkpoint.
  run_dir="${RUN_DIR:-/tmp/dhal_gpu_run}"
  rm -rf "$run_dir"
  train_overrides=()  # TRAIN_OVERRIDES="sim.compile=False sim.njmax=256": env overrides of the training run
  for kv in ${TRAIN_OVERRIDES:-}; do train_overrides+=(--override "$kv"); done
  train_budget=$(python3 scripts/gpu/budget.py train --call-limit "$CALL_LIMIT" \
    --elapsed $(( $(date +%s) - SCRIPT_START )) --train "${TRAIN_BUDGET:-150}" --eval "${EVAL_BUDGET:-120}")
  [ "$train_budget" != "${TRAIN_BUDGET:-150}" ] && echo "training budget cut to ${train_budget}s (CALL_LIMIT=${CALL_LIMIT}s)"
  echo "training: dhal train --preset $TRAIN_PRESET --time-limit $train_budget ${train_overrides[*]}"
  python3 -u -m dhal.cli train --preset "$TRAIN_PRESET" --backend mujoco_warp --device "$DEVICE" --iterations 100000 \
    --time-limit "$train_budget" --save-interval 100000 --run-dir "$run_dir" --no-progress "${train_overrides[@]}"
  train_status=$?
  python3 -u scripts/gpu/summarize_run.py "$run_dir" "$run_dir/train_gpu.json"
  python3 -u scripts/plot_tensorboard.py "$run_dir" "$run_dir/training.png"
  # At most 8 files of 16 MB come back from the machine: the small results in one tar, the
  # checkpoint (45 MB at paper sizes) in 15 MB parts (cat model_*.pt.part-* > model.pt). Packed
  # before the evaluation, so a call that runs out of time still brings the training back.
  for f in "$OUT"/gpu_profile.txt "$OUT"/gpu_trace_*.json.gz; do  # the profile and its Chrome traces
    [ -e "$f" ] && mv "$f" "$run_dir/"
  done
  pack() {
    (cd "$run_dir" && shopt -s nullglob && tar -cf "$OUT/results.tar" --ignore-failed-read config.json \
      train_gpu.json training.png gpu_profile*.txt gpu_trace_*.json.gz events.out.tfevents.* "$@")
  }
  pack
  checkpoint=$(ls -t "$run_dir"/model_*.pt 2>/dev/null | head -1)
  [ -n "$checkpoint" ] && split -b 15M "$checkpoint" "$OUT/$(basename "$checkpoint").part-"
  eval_budget=$(python3 scripts/gpu/budget.py eval --call-limit "$CALL_LIMIT" \
    --elapsed $(( $(date +%s) - SCRIPT_START )) --eval "${EVAL_BUDGET:-120}")
  [ "$eval_budget" != "${EVAL_BUDGET:-120}" ] && echo "evaluation budget cut to ${eval_budget}s (CALL_LIMIT=${CALL_LIMIT}s)"
  timeout "$eval_budget" python3 -u -m dhal.cli eval "$run_dir" --backend mujoco_warp --device "$DEVICE" \
    --episodes "${EVAL_EPISODES:-64}" --num-envs "${EVAL_EPISODES:-64}" --out "$run_dir/eval" --no-progress \
    --override sim.compile=False  # compiling for the eval's batch size would cost it 20-25 s
  eval_status=$?
  pack eval
  ls -la "$OUT"
  # which stage failed, if one did (124: its `timeout` expired)
  echo "exit statuses: bench $bench_status, train $train_status, eval $eval_status"
  [ "$bench_status" = 0 ] && [ "$train_status" = 0 ] && [ "$eval_status" = 0 ]
} 2>&1 | tee "$OUT/gpu_bench.log"
exit "${PIPESTATUS[0]}"
