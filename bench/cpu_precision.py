"""Should `--precision auto` pick bf16 or fp32 for CPU extraction? Speed and feature agreement, measured.

For each backbone, one worker process per CPU kind extracts the same images in fp32 and in bf16 through
the extraction forward pass (sf.extract.runtime.ImageFeaturizer, float16 output as stored):

    native   this CPU as it is (oneDNN picks its best kernels: AVX-512, AVX512-BF16, AMX where present)
    avx2     ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2: the kernels an
             AVX2-only CPU runs (no native bf16: oneDNN emulates it)

It prints img/s (best of --repeats, fp32 and bf16 timed alternately so load on a shared machine hits
both alike) and the agreement of the stored features with fp32 on the same CPU kind: cosine of pooled
vectors and of region-grid vectors (min and median over images/regions) and the largest relative
error of a pooled vector (||a - b|| / ||b||). Row `fp32 other CPU` is the floor that any two machines
differ by anyway: fp32 on native vs fp32 on avx2 kernels.

    python bench/cpu_precision.py --json bench/results/cpu_precision.json
    python bench/cpu_precision.py --backbones resnet18:random -n 32      # quick look
    python bench/cpu_precision.py --workdir /tmp/cpu_precision ...       # rerun reuses finished workers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VISUELLE_IMAGES = ROOT.parent / "shared" / "data" / "visuelle" / "images"
KINDS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have]
    except OSError:
        pass
    return []


# ---------------------------------------------------------------- one CPU kind (a worker process)


def worker(backbone: str, weights: str, images: Path, n: int, batch: int, repeats: int, threads: int, out: Path) -> None:
    import torch

    from sf.extract.backbones import load_backbone
    from sf.extract.images import load_image
    from sf.extract.runtime import ImageFeaturizer, cpu_has_native_bf16

    torch.set_num_threads(threads)
    b = load_backbone(backbone, weights)
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    x = torch.from_numpy(np.stack([load_image(p, b.prep) for p in files]))
    dev = torch.device("cpu")
    feats = {p: ImageFeaturizer(b.trunk, b.prep, dev, p, grid=True, batch_size=batch) for p in ("fp32", "bf16")}
    best = {p: float("inf") for p in feats}
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p, f in feats.items():
        f(x[:batch])  # warm-up: oneDNN builds and caches its primitives on first use
    for _ in range(repeats):
        for p, f in feats.items():
            t = time.perf_counter()
            parts = [f(x[k : k + batch]) for k in range(0, len(x), batch)]
            best[p] = min(best[p], time.perf_counter() - t)
            result[p] = (np.concatenate([q for q, _ in parts]), np.concatenate([g for _, g in parts]))
    np.savez(out, **{f"{p}_pooled": v[0] for p, v in result.items()}, **{f"{p}_grid": v[1] for p, v in result.items()})
    meta = {"img_s": {p: len(x) / s for p, s in best.items()}, "images": len(x), "threads": threads,
            "capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}
    out.with_suffix(".json").write_text(json.dumps(meta))


# ---------------------------------------------------------------- comparison (the parent process)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)


def agreement(a: dict, b: dict, pa: str, pb: str) -> dict:
    """How close features `pa` of run `a` are to reference features `pb` of run `b`."""
    xa, xb = a[f"{pa}_pooled"].astype(np.float64), b[f"{pb}_pooled"].astype(np.float64)
    ga, gb = a[f"{pa}_grid"], b[f"{pb}_grid"]
    rel = np.linalg.norm(xa - xb, axis=-1) / (np.linalg.norm(xb, axis=-1) + 1e-30)
    c, cg = cosine(xa, xb), cosine(ga, gb).reshape(-1)
    return {"bit_identical": bool(np.array_equal(a[f"{pa}_pooled"], b[f"{pb}_pooled"]) and np.array_equal(ga, gb)),
            "pooled_cos_min": float(c.min()), "pooled_cos_median": float(np.median(c)),
            "grid_cos_min": float(cg.min()), "grid_cos_median": float(np.median(cg)), "pooled_rel_err_max": float(rel.max())}


def measure(backbone: str, weights: str, args, tmp: Path) -> list[dict]:
    runs, meta = {}, {}
    for kind, env in KINDS.items():
        out = tmp / f"{backbone}_{kind}.npz"
        if out.exists() and out.with_suffix(".json").exists():  # --workdir: a finished worker of an earlier run
            runs[kind], meta[kind] = dict(np.load(out)), json.loads(out.with_suffix(".json").read_text())
            continue
        cmd = [sys.executable, __file__, "--worker", kind, "--backbones", f"{backbone}:{weights}", "--images", str(args.images),
               "-n", str(args.n), "--batch-size", str(args.batch_size), "--repeats", str(args.repeats),
               "--threads", str(args.threads), "--out", str(out)]
        subprocess.run(cmd, check=True, env={**os.environ, **env})
        runs[kind], meta[kind] = dict(np.load(out)), json.loads(out.with_suffix(".json").read_text())
    rows = []
    for kind in KINDS:
        m = meta[kind]
        base = {"backbone": backbone, "weights": weights, "cpu_kind": kind, "capability": m["capability"],
                "native_bf16": m["native_bf16"], "images": m["images"], "threads": m["threads"]}
        rows.append(base | {"precision": "fp32", "img_s": m["img_s"]["fp32"], "speedup_vs_fp32": 1.0,
                            "vs": "itself"} | agreement(runs[kind], runs[kind], "fp32", "fp32"))
        rows.append(base | {"precision": "bf16", "img_s": m["img_s"]["bf16"],
                            "speedup_vs_fp32": m["img_s"]["bf16"] / m["img_s"]["fp32"], "vs": f"fp32 {kind}"}
                    | agreement(runs[kind], runs[kind], "bf16", "fp32"))
    rows.append({"backbone": backbone, "weights": weights, "cpu_kind": "avx2 vs native", "precision": "fp32",
                 "vs": "fp32 native"} | agreement(runs["avx2"], runs["native"], "fp32", "fp32"))
    rows.append({"backbone": backbone, "weights": weights, "cpu_kind": "avx2 vs native", "precision": "bf16",
                 "vs": "bf16 native"} | agreement(runs["avx2"], runs["native"], "bf16", "bf16"))
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"CPU extraction, fp32 vs bf16 ({cpu_name()}; {' '.join(cpu_flags())})", header_style="bold")
    for c in ("backbone", "CPU kind", "precision", "img/s", "x fp32", "vs", "pooled cos min", "grid cos min",
              "grid cos median", "pooled rel err max"):
        t.add_column(c, justify="left" if c in ("backbone", "CPU kind", "precision", "vs") else "right")
    for r in rows:
        t.add_row(r["backbone"], r["cpu_kind"], r["precision"], f"{r['img_s']:.1f}" if "img_s" in r else "",
                  f"{r['speedup_vs_fp32']:.2f}" if "speedup_vs_fp32" in r else "", r["vs"],
                  f"{r['pooled_cos_min']:.6f}", f"{r['grid_cos_min']:.6f}", f"{r['grid_cos_median']:.6f}",
                  f"{r['pooled_rel_err_max']:.2e}")
    Console(width=200).print(t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="efficientnet_lite0:imagenet,resnet101:random",
                    help="comma-separated NAME:WEIGHTS (resnet ImageNet weights need the torch hub cache)")
    ap.add_argument("--images", type=Path, default=VISUELLE_IMAGES, help="a folder of product images")
    ap.add_argument("-n", type=int, default=64, help="images per measurement")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per precision; the best counts")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep each worker's features here and reuse those already here (same -n, images, batch)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        name, weights = a.backbones.split(":")
        worker(name, weights, a.images, a.n, a.batch_size, a.repeats, a.threads, a.out)
        return
    if not a.images.is_dir():
        raise SystemExit(f"error: {a.images}: no such image folder (pass --images)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for spec in a.backbones.split(","):
            name, weights = spec.split(":")
            rows += measure(name, weights, a, work)
    print_table(rows)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"cpu": cpu_name(), "flags": cpu_flags(), "command": " ".join(sys.argv), "rows": rows},
                                     indent=2))


if __name__ == "__main__":
    main()
