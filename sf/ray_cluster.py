"""Joining a Ray cluster, for everything that runs on one (`sf extract --engine ray`, `sf ablate/compare
--engine ray`). Ray is the optional extra `sf[ray]`; it is imported only here, on use."""

from __future__ import annotations

import os

from sf.errors import SfError


def import_ray():
    try:
        import ray
    except ImportError:
        raise SfError("--engine ray needs Ray: pip install -e '.[ray]' in sf's clone (or pip install 'ray[data]')") from None
    return ray


def connect():
    """The ray module, joined to the cluster in RAY_ADDRESS (or the one this process already joined);
    without either, a local instance on this machine's CPUs."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, logging_level="warning",
                 log_to_driver=True)
    return ray
