"""Batch work (enrich, generated tags, training, evaluation) in this process or on Ray."""

from podrec.batch.runner import BatchError, BatchRunner, InProcessRunner, RayRunner, make_runner

__all__ = ["BatchError", "BatchRunner", "InProcessRunner", "RayRunner", "make_runner"]
