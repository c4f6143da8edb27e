"""The one registry of recommenders: name → factory and hyper-parameter grid.

``podrec evaluate``, ``podrec train`` and serving all build models through ``make_model`` and
choose among ``GRIDS`` the same way (``podrec.train.selection``), so a model that is measured
is the model that is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from podrec.config import TrainConfig
from podrec.model.base import Recommender
from podrec.model.collaborative import (
    ALSModel,
    BPRModel,
    EASEModel,
    ItemKNNModel,
    PopularityModel,
)
from podrec.model.content import ContentModel, ContentWeights
from podrec.model.profile import ProfileModel


def _content(params: dict[str, Any], seed: int) -> Recommender:
    return ContentModel(replace(ContentWeights(expand_k=0), **params))


def _profile(params: dict[str, Any], seed: int) -> Recommender:
    weights = {k: v for k, v in params.items() if k in ContentWeights.__dataclass_fields__}
    rest = {k: v for k, v in params.items() if k not in weights}
    return ProfileModel(replace(ContentWeights(expand_k=0), **weights), **rest)


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model, and the hyper-parameters worth trying (the first
    is the default)."""

    factory: Callable[[dict[str, Any], int], Recommender]
    grid: tuple[dict[str, Any], ...]
    # a model that studies the profile rather than being part of the default hybrid
    profile_study: bool = False
    # scores from a history alone (no per-listener state learned in fit)
    history_only: bool = False


REGISTRY: dict[str, ModelSpec] = {
    "pop": ModelSpec(lambda p, s: PopularityModel(), ({},), history_only=True),
    "pop-recent": ModelSpec(lambda p, s: PopularityModel(**p),
                            ({"half_life_days": 90.0}, {"half_life_days": 365.0})),
    "itemknn": ModelSpec(lambda p, s: ItemKNNModel(**p),
                         ({"neighbours": 100}, {"neighbours": 400}), history_only=True),
    "ease": ModelSpec(lambda p, s: EASEModel(**p),
                      ({"l2": 200.0}, {"l2": 50.0}, {"l2": 800.0}), history_only=True),
    "ials": ModelSpec(lambda p, s: ALSModel(seed=s, **p),
                      ({"factors": 64, "regularization": 0.05, "alpha": 2.0},
                       {"factors": 64, "regularization": 0.5, "alpha": 10.0},
                       {"factors": 128, "regularization": 0.05, "alpha": 1.0})),
    "bpr": ModelSpec(lambda p, s: BPRModel(seed=s, **p),
                     ({"factors": 64, "learning_rate": 0.05},
                      {"factors": 64, "learning_rate": 0.01})),
    "content": ModelSpec(_content, ({}, {"lexical": 0.0, "expand_k": 0}), history_only=True),
    "profile-static": ModelSpec(lambda p, s: ProfileModel(single_vector=True), ({},),
                                profile_study=True),
    # on top of the content weights chosen for "content" (when it runs too)
    "profile": ModelSpec(_profile, tuple(
        {"half_life_days": hl, "max_interests": m, "share_weight": b, "interest_mix": mix}
        for hl in (180.0, 30.0, 0.0)
        for m, b, mix in ((1, 0.0, 1.0), (5, 0.05, 1.0), (5, 0.05, 0.6))),
        profile_study=True, history_only=True),
    # context weights, tried on top of the parameters chosen for "profile"
    "profile-context": ModelSpec(_profile, tuple({"context_weight": c}
                                                 for c in (0.25, 0.5, 0.9)),
                                 profile_study=True),
}
MODELS: tuple[str, ...] = (*REGISTRY, "hybrid")
GRIDS: dict[str, list[dict[str, Any]]] = {n: list(s.grid) for n, s in REGISTRY.items()}
# Models that are not part of the hybrid unless asked for by name (they study the profile).
PROFILE_MODELS = tuple(n for n, s in REGISTRY.items() if s.profile_study)
# Models that score a listener from their history alone, so a history from another platform
# can be handed to them at request time.
HISTORY_MODELS = tuple(n for n, s in REGISTRY.items() if s.history_only)
# The hybrid's parts when nobody names them: the served hybrid's (``train.parts``).
DEFAULT_HYBRID = TrainConfig().parts


def make_model(name: str, params: dict[str, Any], seed: int = 0) -> Recommender:
    """A new, unfitted model by registry name."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return spec.factory(params, seed)
