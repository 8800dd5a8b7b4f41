#!/usr/bin/env bash
# Re-measure every number in the README's Results and Benchmarks on this machine (CPU; ~2 h on 2 cores).
# Needs ../shared/data/visuelle and the [pretrained] extra. Logs and JSON under runs/repro/.
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs/repro; mkdir -p "$R"
VIS=${VIS:-../shared/data/visuelle}
step() { echo "== $* ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"; }

step import and extract
[ -f data/visuelle/products.csv ] || sf import visuelle "$VIS" data/visuelle
[ -f demo_data/products.csv ] || sf demo-data demo_data --products 300 --seed 0
sf extract --data data/visuelle --backbone efficientnet_lite0 --weights imagenet --text-encoder minilm
sf extract --data data/visuelle --backbone resnet18 --weights random --text-encoder minilm
sf extract --data demo_data --backbone efficientnet_lite0 --weights imagenet --text-encoder minilm

step compare
/usr/bin/time -v sf compare --data data/visuelle --features cache/visuelle_efficientnet_lite0.h5 \
  --data demo_data --features cache/demo_efficientnet_lite0.h5 --seeds 5 --shuffled-control \
  --out "$R/compare" 2>&1 | tee "$R/compare.log"

step shared recipe and equal tuning budget
python bench/tuning.py --data data/visuelle --features cache/visuelle_efficientnet_lite0.h5 \
  --variants default,gtm,ekambaram --seeds 5 --log "$R/tuning.jsonl" 2>&1 | tee "$R/tuning.log"
sf compare --data data/visuelle --features cache/visuelle_efficientnet_lite0.h5 \
  --models mean_curve,gtm,ekambaram,sf --tune-trials 20 --seeds 5 --out "$R/compare_tuned" 2>&1 | tee "$R/compare_tuned.log"
python bench/tune.py --data data/visuelle --features cache/visuelle_efficientnet_lite0.h5 --out "$R/tune" \
  2>&1 | tee "$R/bench_tune.log"

step ablate
python bench/ablate.py --data data/visuelle --features cache/visuelle_efficientnet_lite0.h5 \
  --features-alt cache/visuelle_resnet18.h5 --out "$R/ablate" 2>&1 | tee "$R/bench_ablate.log"

step bench extract
python bench/extract.py --backbone resnet101 --weights random -n 256 --batch-size 32 --json "$R/bench_extract_resnet101.json"
python bench/extract.py --backbone efficientnet_lite0 --weights imagenet -n 512 --batch-size 32 --json "$R/bench_extract_lite0.json"

step bench train
python bench/train.py 2>&1 | tee "$R/bench_train.log"

step bench demo
python bench/demo.py --json "$R/bench_demo.json" 2>&1 | tee "$R/bench_demo.log"
python bench/demo_heldout.py --json "$R/demo_heldout.json" 2>&1 | tee "$R/demo_heldout.log"
step done
