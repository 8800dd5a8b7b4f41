#!/usr/bin/env bash
# Stage 2 and the whole demo on a CUDA machine (device auto -> cuda): does every command run there, and
# how long does it take? Prints each command's wall time.   bash bench/gpu_stage2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
sf() { python3 -m sf "$@"; }
W=$(mktemp -d)
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name())"
time sf demo --out "$W/demo"
store=$(ls "$W"/demo/cache/*.h5 | head -1)
time sf train --features "$store" --data "$W/demo/data" --device cuda --seeds 3 --out "$W/train_cuda"
time sf train --features "$store" --data "$W/demo/data" --device cpu --seeds 3 --out "$W/train_cpu"
time sf compare --features "$store" --data "$W/demo/data" --device cuda --seeds 2 --out "$W/compare_cuda"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
for name in ("train_cuda", "train_cpu"):
    m = json.load(open(f"{w}/{name}/metrics.json"))
    print(name, "val WAPE", round(m["val"]["mean"]["WAPE"], 2), "test WAPE", round(m["test"]["mean"]["WAPE"], 2),
          "s/seed", [round(s, 1) for s in m["training"]["seconds"]])
PY
