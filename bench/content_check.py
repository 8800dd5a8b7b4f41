"""What stage 2's store checks cost: the crash-proof metadata probe, reading the store, and the content-hash
check of every product's image + text against the store (sf.forecast.freshness), first and repeated.

    python bench/content_check.py --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle
"""

from __future__ import annotations

import argparse
import json
import time

from sf.cache.reader import load_features, read_attrs
from sf.data.contract import load_dataset
from sf.forecast.freshness import check_fresh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    t = {}
    t0 = time.perf_counter()
    read_attrs(args.features)
    t["probe_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = load_features(args.features)
    t["load_features_s"] = time.perf_counter() - t0
    ds = load_dataset(args.data)
    ids = ds.product_ids
    rows = feats.rows(ids)
    for key in ("content_check_first_s", "content_check_again_s"):
        t0 = time.perf_counter()
        check_fresh(feats, ds, ids, rows)
        t[key] = time.perf_counter() - t0
    images = [p for p in ds.image_paths().values() if p is not None]
    t.update(products=len(ids), image_files=len(images), image_mib=sum(p.stat().st_size for p in images if p.is_file()) / 2**20)
    t["check_share_of_load"] = t["content_check_first_s"] / t["load_features_s"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in t.items()}, indent=2))


if __name__ == "__main__":
    main()
