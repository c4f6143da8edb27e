"""The Python API: ``Podrec`` over the store, the embedder and the models."""

from podrec.recommend.context import RequestContext
from podrec.recommend.request import RecommendRequest
from podrec.recommend.results import Recommendation
from podrec.service.catalog import WEIGHTS_ARTIFACT
from podrec.service.errors import NotFoundError
from podrec.service.facade import Podrec

__all__ = ["WEIGHTS_ARTIFACT", "NotFoundError", "Podrec", "RecommendRequest", "Recommendation",
           "RequestContext"]
