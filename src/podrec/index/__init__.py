"""Nearest-neighbour search over item vectors, behind one interface."""

from podrec.index.vector_index import ExactIndex, VectorIndex

__all__ = ["ExactIndex", "VectorIndex"]
