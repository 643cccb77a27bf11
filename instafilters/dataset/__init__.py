"""Build ImageNet-Instagram from an image tree: plan (walk, shards), build (workers,
backends, progress), manifest (what --out was built with). The CLI is command.py."""
from .build import BuildConfig, build
from .progress import Summary
from ..tree import walk
from .plan import Shard

__all__ = ["BuildConfig", "Summary", "build", "Shard", "walk"]
