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

from podrec.batch.runner import BatchRunner, InProcessRunner
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


def validate(point: tuple[str, dict[str, Any], int], catalog: CatalogData, val: Fold
             ) -> tuple[float, Recommender]:
    """One grid point: the model fitted on the validation fold's training pairs, and its
    NDCG@10 on the held-out pairs. A task of its own (``podrec.batch``)."""
    name, params, seed = point
    model = make_model(name, params, seed).fit(catalog, val.train)
    lists = rank(model, val, 10)
    q = float(np.mean([M.ndcg_at_k(r.tolist(), rel, 10)
                       for r, rel in zip(lists, val.relevant, strict=True)])) if lists else 0.0
    return q, model


def _waves(names: Sequence[str]) -> list[list[str]]:
    """``names`` in runs that can be validated at once: a model whose grid is built on
    another's choice (a profile on the content's, the context on the profile's) waits for
    the run that chooses it."""
    needs = {"profile": "content", "profile-context": "profile"}
    waves: list[list[str]] = [[]]
    for name in names:
        if needs.get(name) in waves[-1]:
            waves.append([])
        waves[-1].append(name)
    return [w for w in waves if w]


def choose(catalog: CatalogData, val: Fold, names: Sequence[str], seed: int = 0,
           fixed: dict[str, dict[str, Any]] | None = None, want_hybrid: bool = False,
           progress: Progress | None = None,
           extra: dict[str, dict[str, Any]] | None = None,
           runner: BatchRunner | None = None) -> Selection:
    """Try each model's grid on ``val``; keep the best (the first of equals, in grid order);
    learn the hybrid's blend there. ``extra``: {model: parameters} added to every entry of
    that model's grid (settings of the deployment, such as EASE's size, rather than
    choices). ``runner``: where the grid points run (``podrec.batch``; default here)."""
    say = progress or (lambda _m: None)
    runner = runner or InProcessRunner()
    sel = Selection()
    for wave in _waves(names):
        points: list[tuple[str, dict[str, Any], int]] = []
        for name in wave:
            grid = [fixed[name]] if fixed and name in fixed else GRIDS[name]
            grid = [p | (extra or {}).get(name, {}) for p in grid]
            if name == "profile-context":  # context on top of the chosen profile
                grid = [sel.chosen["profile"]["params"] | p for p in grid]
            elif name == "profile" and "content" in sel.chosen:  # profiles of the chosen content
                grid = [sel.chosen["content"]["params"] | p for p in grid]
            points += [(name, params, seed) for params in grid]
        best: dict[str, tuple[float, int, Recommender]] = {}

        def done(n: int, result: tuple[float, Recommender],
                 points: list[tuple[str, dict[str, Any], int]] = points,
                 best: dict[str, tuple[float, int, Recommender]] = best) -> None:
            name, params, _ = points[n]
            q, model = result
            say(f"validation {name} {params}: ndcg@10 {q:.4f}")
            held = best.get(name)
            if held is None or q > held[0] or (q == held[0] and n < held[1]):
                best[name] = (q, n, model)

        runner.map(validate, points, shared=(catalog, val), on_result=done,
                   what="grid points", keep=False)
        for name in wave:
            q, n, model = best[name]
            sel.chosen[name] = {"params": points[n][1], "validation_ndcg@10": round(q, 4)}
            sel.val_models[name] = model
    if want_hybrid:
        parts = {n: sel.val_models[n] for n in hybrid_parts(names)}
        hybrid_val = HybridModel(parts).fit(catalog, val.train)
        t0 = time.perf_counter()
        sel.blend_report = hybrid_val.learn_blend(val.batch, val.relevant, k=10,
                                                  progress=say) if len(val.users) else []
        sel.blend_seconds = time.perf_counter() - t0
        sel.blend = hybrid_val.blend
    return sel


def fit_one(task: tuple[str, dict[str, Any], int], catalog: CatalogData, train: Interactions
            ) -> Recommender:
    """One model fitted with its parameters: a task of its own (``podrec.batch``)."""
    name, params, seed = task
    return make_model(name, params, seed).fit(catalog, train)


def fit_chosen(catalog: CatalogData, train: Interactions, sel: Selection, seed: int = 0,
               runner: BatchRunner | None = None) -> dict[str, Recommender]:
    """Every chosen model refitted on ``train`` with its chosen parameters."""
    runner = runner or InProcessRunner()
    names = list(sel.chosen)
    models = runner.map(fit_one, [(n, sel.chosen[n]["params"], seed) for n in names],
                        shared=(catalog, train), what="model fits")
    return dict(zip(names, models, strict=True))


def assemble_hybrid(catalog: CatalogData, train: Interactions,
                    fitted: dict[str, Recommender], sel: Selection) -> HybridModel:
    """The hybrid of the fitted components, with the blend learned on validation."""
    hybrid = HybridModel({n: fitted[n] for n in hybrid_parts(list(sel.chosen))})
    hybrid.fit(catalog, train)
    if sel.blend is not None:
        hybrid.blend = sel.blend
    return hybrid
