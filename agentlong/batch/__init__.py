"""Batch document jobs: a spec file, resumable exactly-once results, local threads or Ray.

>>> from agentlong import batch
>>> sorted(n for n in batch.__all__ if n in ("run", "iter_results", "status"))
['iter_results', 'run', 'status']
"""

from __future__ import annotations

from .runner import BatchJob, BatchSummary, iter_results, run, status
from .spec import BatchSpec, load_spec, parse_spec

__all__ = ["run", "iter_results", "status", "BatchJob", "BatchSummary", "BatchSpec", "load_spec", "parse_spec"]
