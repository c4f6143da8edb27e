"""Choosing models on a validation split: one procedure for ``podrec evaluate`` and
``podrec train``.

Each model's hyper-parameters are tried from its registry grid on the validation fold
(models fitted on the validation fold's training pairs, NDCG@10 on its held-out pairs); the
hybrid's blend is learned there from the chosen components. ``podrec evaluate`` then refits
on its training part and scores a test split; ``podrec train`` refits on every stored event
and saves the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from podrec.evaluate import metrics as M
from podrec.evaluate.folds import Fold, rank
from podrec.model.base import CatalogData, Recommender
from podrec.model.hybrid import HybridModel
from podrec.model.interactions import Interactions
from podrec.model.registry import DEFAULT_HYBRID, GRIDS, MODELS, make_model

Progress = Callable[[str], None]


@dataclass
class Selection:
    """What validation chose: per model its parameters and validation NDCG@10, the models
    fitted on the validation fold, and (when a hybrid was asked for) its blend."""

    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    val_models: dict[str, Recommender] = field(default_factory=dict)
    blend: list[dict[str, float]] | None = None
    blend_report: list[dict[str, Any]] = field(default_factory=list)
    blend_seconds: float = 0.0


def single_models(names: Sequence[str], hybrid_parts: Sequence[str] = DEFAULT_HYBRID
                  ) -> list[str]:
    """The single models to fit for ``names``: a hybrid alone brings its parts; a context
    profile brings the profile it is built on; in registry order."""
    singles = [m for m in names if m != "hybrid"]
    if "hybrid" in names and not singles:
        singles = list(hybrid_parts)
    if "profile-context" in singles and "profile" not in singles:
        singles.append("profile")
    return sorted(dict.fromkeys(singles), key=MODELS.index)


def hybrid_parts(names: Sequence[str]) -> list[str]:
    """The hybrid's components among the chosen single models (not the profile studies that
    only vary another part)."""
    return [n for n in names if n not in ("profile-static", "profile-context")]


def choose(catalog: CatalogData, val: Fold, names: Sequence[str], seed: int = 0,
           fixed: dict[str, dict[str, Any]] | None = None, want_hybrid: bool = False,
           progress: Progress | None = None,
           extra: dict[str, dict[str, Any]] | None = None) -> Selection:
    """Try each model's grid on ``val``; keep the best; learn the hybrid's blend there.
    ``extra``: {model: parameters} added to every entry of that model's grid (settings of
    the deployment, such as EASE's size, rather than choices)."""
    say = progress or (lambda _m: None)
    sel = Selection()
    for name in names:
        best = None
        grid = [fixed[name]] if fixed and name in fixed else GRIDS[name]
        grid = [p | (extra or {}).get(name, {}) for p in grid]
        if name == "profile-context":  # context on top of the chosen profile
            grid = [sel.chosen["profile"]["params"] | p for p in grid]
        elif name == "profile" and "content" in sel.chosen:  # profiles of the chosen content
            grid = [sel.chosen["content"]["params"] | p for p in grid]
        for params in grid:
            model = make_model(name, params, seed).fit(catalog, val.train)
            lists = rank(model, val, 10)
            q = float(np.mean([M.ndcg_at_k(r.tolist(), rel, 10)
                               for r, rel in zip(lists, val.relevant, strict=True)])) \
                if lists else 0.0
            say(f"validation {name} {params}: ndcg@10 {q:.4f}")
            if best is None or q > best[0]:
                best = (q, params, model)
        assert best is not None
        sel.chosen[name] = {"params": best[1], "validation_ndcg@10": round(best[0], 4)}
        sel.val_models[name] = best[2]
    if want_hybrid:
        parts = {n: sel.val_models[n] for n in hybrid_parts(names)}
        hybrid_val = HybridModel(parts).fit(catalog, val.train)
        t0 = time.perf_counter()
        sel.blend_report = hybrid_val.learn_blend(val.batch, val.relevant, k=10,
                                                  progress=say) if len(val.users) else []
        sel.blend_seconds = time.perf_counter() - t0
        sel.blend = hybrid_val.blend
    return sel


def fit_chosen(catalog: CatalogData, train: Interactions, sel: Selection, seed: int = 0
               ) -> dict[str, Recommender]:
    """Every chosen model refitted on ``train`` with its chosen parameters."""
    return {name: make_model(name, c["params"], seed).fit(catalog, train)
            for name, c in sel.chosen.items()}


def assemble_hybrid(catalog: CatalogData, train: Interactions,
                    fitted: dict[str, Recommender], sel: Selection) -> HybridModel:
    """The hybrid of the fitted components, with the blend learned on validation."""
    hybrid = HybridModel({n: fitted[n] for n in hybrid_parts(list(sel.chosen))})
    hybrid.fit(catalog, train)
    if sel.blend is not None:
        hybrid.blend = sel.blend
    return hybrid
