#!/usr/bin/env bash
# One run on a lent GPU machine (see docs/benchmarks.md): the builder's CUDA tests, the scan and
# render benchmarks at full size, and a whole paper-exp1 build from a 16,000-image folder.
# Needs the wheels listed in docs/benchmarks.md under .whl/ (lucent, kornia, IPython, pydantic);
# results go to $OUT (or bench/out/gpu). PARTS (default "tests render scan build") picks the
# sections, so that a 10-minute command limit can take it in two calls:
#   PARTS="tests render" bash bench/builder/gpu_check.sh; PARTS="scan build" bash bench/builder/gpu_check.sh
set -uo pipefail
PARTS=${PARTS:-tests render scan build}
want() { [[ " $PARTS " == *" $1 "* ]]; }
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

if want tests; then
stamp "CUDA tests (CUDA vs CPU scans, builds and renders; new render paths vs the previous one)"
timeout 150 python3 -m pytest tests/stimuli_builder/test_cuda.py tests/stimuli_builder/test_render_paths.py \
  -m gpu -p no:cacheprovider --confcutdir=tests/stimuli_builder -q -rA 2>&1 | tail -30 \
  | tee "$OUT/pytest_cuda.txt"
fi

if want render; then
# Render variants (precision:layers:flags): the previous path (nchw, fp32 Gram, fp32 transforms),
# channels_last alone, then bf16 Gram products, transforms in bf16 and torch.compile on top.
stamp "render bench (lucent render_vis vs ours: previous path and each new option, 2 kernel profiles)"
timeout 240 python3 bench/builder/bench_render.py --steps 30 \
  --variants fp32:fast:nchw,fp32:fast:cl,fp32:fast:cl+g16,bf16:fast:nchw,bf16:fast:cl,bf16:fast:cl+g16+tm,fp32:lucent:nchw,bf16:fast:cl+g16+tm+compile \
  --profile "$OUT/profile.txt" --profile-variants fp32:fast:nchw,bf16:fast:cl+g16+tm \
  --json "$OUT/render.json" >/dev/null 2>"$OUT/render.err"
echo "rc=$?"; grep -v "^INFO:stimuli_builder.nets" "$OUT/render.err" | tail -5
fi

if want scan; then
# Scan: every configuration serial (previous loop) then overlapped (staging thread + second
# CUDA stream); identical_to_serial compares the two results.
stamp "scan bench"
timeout 180 python3 bench/builder/bench_scan.py --images 16000 --workers 16 --batch 512 \
  --decoders pil,torch --overlap both --json "$OUT/scan.json" >/dev/null 2>"$OUT/scan.err"
echo "rc=$?"; grep "scan finished\|agreement" "$OUT/scan.err" | tail -8
fi

if want build; then
stamp "paper-exp1 build, 16k images, 128 render steps"
time timeout 100 python3 -m stimuli_builder build --preset paper-exp1 \
  --data bench/out/scan_images --out /tmp/gpu_set --work-dir /tmp/gpu_work --random-weights \
  --steps 128 --precision bf16 --device cuda --workers 16 --batch-size 512 >"$OUT/build.txt" 2>&1
echo "rc=$?"; grep -v "^INFO:stimuli_builder.nets" "$OUT/build.txt" | tail -12
ls /tmp/gpu_set 2>/dev/null | head; du -sh /tmp/gpu_set 2>/dev/null
fi
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
    if name == "scan.json" and "plain" in d:
        plain = d["plain"]["images_per_s"]
        for key, v in d.items():
            if key.startswith("ours") and "images_per_s" in v:
                print(f"  {key}: {v['images_per_s']:.0f} images/s = {v['images_per_s'] / plain:.2f}x plain"
                      f" (goal 5,000), main thread waited {v['main_thread_wait_s']:.2f} s,"
                      f" identical_to_serial={v.get('identical_to_serial')}")
    if name == "render.json":
        for key, v in d.items():
            if key.startswith("ours") and "speedup" in v:
                print(f"  {key}: {v['speedup']:.1f}x render_vis (goal 20x), {v['image_steps_per_s']:.0f} image-steps/s")
        for key, v in d.get("profile", {}).items():
            print(f"  profile {key}: aten::copy_ {100 * v.get('copy_share', 0):.0f} % of time, "
                  f"{v.get('copy_calls_per_step', 0):.0f} calls/step")
PY
