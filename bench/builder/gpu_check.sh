#!/usr/bin/env bash
# One run on a lent GPU machine (see docs/benchmarks.md): the builder's CUDA tests, the scan and
# render benchmarks at full size, and a whole paper-exp1 build from a 16,000-image folder.
# Needs the wheels listed in docs/benchmarks.md under .whl/ (lucent, kornia, IPython, pydantic);
# results go to $OUT (or bench/out/gpu).
set -uo pipefail
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "== $1 (t=$(( $(date +%s) - start )) s)"; }

stamp environment
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/env.txt"
nproc | tee -a "$OUT/env.txt"
python3 -c "import torch, torchvision, lucent, kornia, pydantic; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/env.txt"

stamp "CUDA tests"
timeout 60 python3 -m pytest tests/stimuli_builder/test_cuda.py -m gpu -p no:cacheprovider \
  --confcutdir=tests/stimuli_builder -q -rA 2>&1 | tail -30 | tee "$OUT/pytest_cuda.txt"

stamp "render bench (lucent render_vis vs ours, 3 variants, kernel profile)"
timeout 130 python3 bench/builder/bench_render.py --steps 30 \
  --variants fp32:fast,bf16:fast,fp32:lucent --profile "$OUT/profile.txt" \
  >"$OUT/render.json" 2>"$OUT/render.err"
echo "rc=$?"; grep -v "^INFO:stimuli_builder.nets" "$OUT/render.err" | tail -5

stamp "scan bench"
timeout 120 python3 bench/builder/bench_scan.py --images 16000 --workers 16 --batch 512 \
  --decoders pil >"$OUT/scan.json" 2>"$OUT/scan.err"
echo "rc=$?"; grep "scan finished\|agreement" "$OUT/scan.err" | tail -6

stamp "paper-exp1 build, 16k images, 128 render steps"
time timeout 100 python3 -m stimuli_builder build --preset paper-exp1 \
  --data bench/out/scan_images --out /tmp/gpu_set --work-dir /tmp/gpu_work --random-weights \
  --steps 128 --precision bf16 --device cuda --workers 16 --batch-size 512 >"$OUT/build.txt" 2>&1
echo "rc=$?"; grep -v "^INFO:stimuli_builder.nets" "$OUT/build.txt" | tail -12
ls /tmp/gpu_set 2>/dev/null | head; du -sh /tmp/gpu_set 2>/dev/null
stamp done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("scan.json", "render.json"):
    try:
        d = json.load(open(f"{out}/{name}"))
    except Exception as exc:  # noqa: BLE001
        print(name, "unreadable", exc); continue
    print(name, json.dumps(d)[:3000])
PY
