"""Recommenders: one protocol (base.py), implementations beside it."""

from podrec.model.base import CatalogData, Recommender, Scored, UserBatch
from podrec.model.content import ContentModel, ContentWeights

__all__ = ["CatalogData", "ContentModel", "ContentWeights", "Recommender", "Scored", "UserBatch"]
