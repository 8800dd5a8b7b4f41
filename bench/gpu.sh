#!/usr/bin/env bash
# Stage-1 checks on a CUDA machine, as one script: throughput (bench/extract.py) per backbone and
# precision, then `sf extract` end to end on the demo catalogue: GPU bf16 and fp32 vs CPU fp32
# features, and sharded+merged vs whole on the GPU. Results as JSON under ${OUT:-runs/bench/gpu}.
#   N=4096 bash bench/gpu.sh            # N images per throughput measurement
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bench/gpu}; mkdir -p "$OUT"
N=${N:-4096}; P=${P:-200}; DEV=${DEV:-cuda}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
sf() { python3 -m sf "$@"; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"

# backbone:precision:batch:store (grid = pooled + 7x7 region grid, the default; pooled = --pooled-only)
for spec in resnet101:auto:128:grid resnet101:auto:128:pooled resnet101:fp32:128:grid resnet18:auto:256:grid; do
  IFS=: read -r bb prec bs store <<<"$spec"
  python3 bench/extract.py --backbone "$bb" --weights random --device "$DEV" --precision "$prec" \
    -n "$N" --batch-size "$bs" --repeats 2 $([ "$store" = pooled ] && echo --pooled-only) \
    --json "$OUT/extract_${bb}_${prec}_${store}.json"
done

W=$(mktemp -d)
sf demo-data "$W/demo" --products "$P" --seed 0 >/dev/null
common=(--data "$W/demo" --backbone resnet101 --weights random --seed 0 --text-encoder hash --batch-size 64)
sf extract "${common[@]}" --device cpu --precision fp32 --out "$W/cpu_fp32.h5" >/dev/null
sf extract "${common[@]}" --device "$DEV" --precision fp32 --out "$W/gpu_fp32.h5" >/dev/null
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_auto.h5" >/dev/null
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_s0.h5" --shard 0/2 >/dev/null
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_s1.h5" --shard 1/2 >/dev/null
sf cache merge "$W/gpu_merged.h5" "$W/gpu_s0.h5" "$W/gpu_s1.h5" >/dev/null
sf cache verify "$W/gpu_merged.h5"
python3 bench/compare_stores.py "$W/cpu_fp32.h5" "$W/gpu_fp32.h5" --json "$OUT/stores_cpu_vs_gpu_fp32.json"
python3 bench/compare_stores.py "$W/cpu_fp32.h5" "$W/gpu_auto.h5" --json "$OUT/stores_cpu_vs_gpu_auto.json"
python3 bench/compare_stores.py "$W/gpu_auto.h5" "$W/gpu_merged.h5" --json "$OUT/stores_gpu_whole_vs_sharded.json"
