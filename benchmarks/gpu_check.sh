#!/usr/bin/env bash
# Issue 15's GPU figures (items 4 and 5) in ONE short device call: SGLD at the paper's setting (slt with both noise
# sources, devinterp 1.3.2 when its wheel is carried, the GPU roofline) and the training step against its roofline.
#
# Here, once (the wheel is pure Python; its other needs, einops and pandas, are in the device image):
#     mkdir -p .whl && grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
#     .venv/bin/python -m pip download --no-deps --only-binary=:all: -d .whl devinterp==1.3.2
# Then with the device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# Writes gpu.txt, bench_llc.log, bench_llc.json and bench_training.log under $OUT (./runs/gpu_check without it).
# DEVICE (default cuda), PYTHON (default python3) and QUICK=1 (a smoke run) are for trying the script elsewhere.
set -uo pipefail
out=${OUT:-runs/gpu_check}
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
quick=${QUICK:+--quick}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} | tee "$out/gpu.txt"
venvs=""
wheel=$(ls .whl/devinterp-1.3.2-*.whl 2>/dev/null | head -n 1)
if [ -n "$wheel" ]; then
    # bench_llc runs <venv>/bin/python for devinterp; this stand-in is the image's python with devinterp on its path
    d=/tmp/devinterp-1.3.2
    mkdir -p "$d/bin" "$d/site"
    "$py" -m pip install -q --no-index --no-deps --target "$d/site" "$wheel"
    printf '#!/bin/sh\nPYTHONPATH=%s/site${PYTHONPATH:+:$PYTHONPATH} exec %s "$@"\n' "$d" "$(command -v "$py")" > "$d/bin/python"
    chmod +x "$d/bin/python"
    venvs=$d
fi
status=0
timeout 330 "$py" benchmarks/bench_llc.py --device "$device" --regime paper --repeats 3 $quick \
    --devinterp-venvs "$venvs" --json "$out/bench_llc.json" 2>&1 | tee "$out/bench_llc.log" || status=1
timeout 150 "$py" benchmarks/bench_training.py --device "$device" --parts 4 --rounds 3 $quick 2>&1 \
    | tee "$out/bench_training.log" || status=1
exit $status
