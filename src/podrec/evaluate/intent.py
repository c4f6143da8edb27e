"""Does the request's mood or intent text help? Measured on requests that carry one.

Real listening logs with typed intents do not exist in public data. The closest real thing
is a listener's own words about what they picked at that moment: MovieLens ``tags.csv``
(user, movie, free-text tag, time). Each (user, movie) tagging becomes a request made at that
time, with the tag text as the request's intent ("dark comedy", "time travel"), the
listener's ratings from before that session as history, and the tagged movie as the one item
that should come up. The same profile ranks the catalog twice, without and with the intent
(``ProfileModel.intent_weight``, chosen on a validation half of the listeners); the intent
text alone is the reference that shows how much of the gain is the text by itself.

This is an optimistic proxy: the tags were written after watching, about the movie, so they
describe the target better than a typed mood would. It answers whether the context path works
on real words and real histories, not how much a given app's listeners gain.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from podrec.config import RecommendConfig
from podrec.enrich.embedders import TextEmbedder
from podrec.evaluate import metrics as M
from podrec.evaluate.folds import EvalData, embed_cached
from podrec.llm.intents import Intent, parse_rules
from podrec.model.base import UserBatch
from podrec.model.content import ContentWeights
from podrec.model.profile import ProfileModel
from podrec.recommend.balance import balance
from podrec.recommend.filters import excluded_mask

INTENT_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SESSION_SECONDS = 3600.0  # history ends this long before the request: not the same sitting
Progress = Callable[[str], None]


class IntentFileError(ValueError):
    """An intent file that cannot be read: which file, line and column."""


@dataclass(frozen=True)
class IntentRequest:
    """A request made at ``time`` (Unix seconds) with the intent ``text``; ``item_id`` is
    what the listener chose."""

    user_id: str
    item_id: str
    text: str
    time: float


COLUMNS = {"movielens": ("userId", "movieId", "tag", "timestamp"),
           "generic": ("user_id", "item_id", "text", "timestamp")}


def read_intents(path: Path) -> list[IntentRequest]:
    """MovieLens ``tags.csv`` (ids become ``movielens:N``, like its ratings and movies) or a
    CSV with user_id, item_id, text, timestamp (Unix seconds). Several tags of one listener
    on one item make one request: the texts joined, at the earliest time."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise IntentFileError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = set(reader.fieldnames or ())
        kind = next((k for k, cols in COLUMNS.items() if set(cols) <= header), None)
        if kind is None:
            raise IntentFileError(
                f"{path}: line 1: expected the columns {', '.join(COLUMNS['generic'])} (or "
                f"MovieLens tags.csv: {', '.join(COLUMNS['movielens'])}), got "
                f"{', '.join(reader.fieldnames or ()) or 'none'}")
        user_col, item_col, text_col, time_col = COLUMNS[kind]
        merged: dict[tuple[str, str], tuple[list[str], float]] = {}
        for line, row in enumerate(reader, start=2):
            user, item = (row.get(user_col) or "").strip(), (row.get(item_col) or "").strip()
            text = (row.get(text_col) or "").strip()
            if not (user and item and text):
                raise IntentFileError(f"{path}: line {line}: {user_col}, {item_col} and "
                                      f"{text_col} are required")
            try:
                when = float(row.get(time_col) or "")
            except ValueError:
                raise IntentFileError(f"{path}: line {line}: {time_col}: expected Unix "
                                      f"seconds, got {row.get(time_col)!r}") from None
            if kind == "movielens":
                user, item = f"movielens:{user}", f"movielens:{item}"
            texts, first = merged.get((user, item), ([], when))
            if text.lower() not in (t.lower() for t in texts):
                texts.append(text)
            merged[(user, item)] = (texts, min(first, when))
    return [IntentRequest(u, i, ", ".join(texts), when)
            for (u, i), (texts, when) in merged.items()]


@dataclass
class IntentFold:
    requests: list[IntentRequest]
    batch: UserBatch  # histories before each request; intent vectors set
    targets: np.ndarray  # the chosen item's row per request

    @property
    def users(self) -> list[str]:
        return [r.user_id for r in self.requests]


def make_intent_fold(data: EvalData, requests: Sequence[IntentRequest],
                     embedder: TextEmbedder, cache_dir: Path, min_history: int = 5
                     ) -> IntentFold:
    """One row per usable request: the target is in the catalog, and the listener rated at
    least ``min_history`` other items before the request's session."""
    pairs = data.interactions
    user_index = {u: n for n, u in enumerate(pairs.user_ids)}
    item_index = {i: n for n, i in enumerate(pairs.item_ids)}
    positive = pairs.confidence > 0
    by_user: dict[int, np.ndarray] = {}
    order = np.argsort(pairs.users, kind="stable")
    bounds = np.searchsorted(pairs.users[order], np.arange(pairs.n_users + 1))
    for u in range(pairs.n_users):
        idx = order[bounds[u]:bounds[u + 1]]
        by_user[u] = idx[positive[idx]]
    kept: list[IntentRequest] = []
    rows, cols, vals, times, targets = [], [], [], [], []
    for req in requests:
        u, target = user_index.get(req.user_id), item_index.get(req.item_id)
        if u is None or target is None:
            continue
        idx = by_user[u]
        idx = idx[(pairs.times[idx] < req.time - SESSION_SECONDS) & (pairs.items[idx] != target)]
        if len(idx) < min_history:
            continue
        n = len(kept)
        kept.append(req)
        rows += [n] * len(idx)
        cols += pairs.items[idx].tolist()
        vals += pairs.confidence[idx].tolist()
        times += pairs.times[idx].tolist()
        targets.append(target)
    shape = (len(kept), pairs.n_items)
    histories = sparse.csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float32)
    history_times = sparse.csr_matrix((times, (rows, cols)), shape=shape, dtype=np.float64)
    histories.sort_indices()
    history_times.sort_indices()
    texts = [r.text for r in kept]
    intents = embed_cached(embedder, texts, cache_dir, queries=True) if texts else None
    batch = UserBatch(histories, history_times=history_times,
                      now=np.array([r.time for r in kept]), intent_vectors=intents)
    return IntentFold(kept, batch, np.array(targets, dtype=np.int64))


def _per_request(lists: list[np.ndarray], targets: np.ndarray, ks: Sequence[int]
                 ) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for ranked_arr, target in zip(lists, targets.tolist(), strict=True):
        ranked, rel = ranked_arr.tolist(), {target}
        for k in ks:
            for name, fn in (("hit", M.hit_rate_at_k), ("ndcg", M.ndcg_at_k),
                             ("recall", M.recall_at_k), ("mrr", M.mrr_at_k)):
                out.setdefault(f"{name}@{k}", []).append(fn(ranked, rel, k))
    return {name: np.array(v) for name, v in out.items()}


def _scores(lists: list[np.ndarray], targets: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    return {name: float(v.mean()) for name, v in _per_request(lists, targets, ks).items()}


def _per_listener(values: np.ndarray, groups: Sequence[str]) -> float:
    """The mean over listeners of each listener's mean: one heavy tagger counts once."""
    arr = np.asarray(groups)
    return float(np.mean([values[arr == g].mean() for g in sorted(set(groups))]))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, groups: Sequence[str], seed: int = 0,
                     n: int = 2000) -> tuple[float, float, float]:
    """(mean of a - b, 2.5% and 97.5% quantiles) resampling whole listeners (``groups``),
    since one listener's requests are not independent of each other."""
    names = sorted(set(groups))
    index = {g: np.flatnonzero(np.asarray(groups) == g) for g in names}
    diff = a - b
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n):
        pick = np.concatenate([index[names[i]] for i in rng.integers(0, len(names),
                                                                      len(names))])
        means.append(diff[pick].mean())
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(lo), float(hi)


def _top(scores: np.ndarray, seen: sparse.csr_matrix, k: int) -> list[np.ndarray]:
    """Top ``k`` rows per request, their history left out."""
    out = []
    for u in range(scores.shape[0]):
        row = scores[u].copy()
        row[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-row, k)[:k]
        out.append(top[np.argsort(-row[top], kind="stable")])
    return out


def _choose_weight(run: Any, idx: np.ndarray, targets: np.ndarray, say: Progress
                   ) -> tuple[float, float, dict[str, float]]:
    """The intent weight with the best validation NDCG@10 (and every weight's figure)."""
    chosen, best = INTENT_WEIGHTS[0], -1.0
    validation = {}
    for w in (0.0, *INTENT_WEIGHTS):
        q = _scores(run(w, idx), targets, [10])["ndcg@10"]
        validation[f"{w:g}"] = round(q, 4)
        say(f"validation profile+intent intent_weight={w:g}: ndcg@10 {q:.4f}")
        if w > 0 and q > best:
            chosen, best = w, q
    return chosen, best, validation


def _compare(per: dict[str, dict[str, np.ndarray]], groups: list[Any], seed: int,
             say: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean figures per ranking, and profile + intent against the others with listener-
    bootstrap intervals."""
    models = {name: {m: float(v.mean()) for m, v in values.items()}
              | {"ndcg@10 per listener": _per_listener(values["ndcg@10"], groups)}
              for name, values in per.items()}
    for name, m in models.items():
        say(f"test {name}: ndcg@10 {m['ndcg@10']:.4f}, hit@10 {m['hit@10']:.4f}")
    gain = {}
    pairs = [("profile + intent", "profile (no context)"),
             ("profile + intent", "intent text alone"),
             ("profile + intent, read", "profile + intent")]
    for mine, other in pairs:
        if mine not in per:
            continue
        d, lo, hi = paired_bootstrap(per[mine]["ndcg@10"], per[other]["ndcg@10"], groups, seed)
        gain[f"{mine} - {other}"] = {"ndcg@10": round(d, 4),
                                     "ci95": [round(lo, 4), round(hi, 4)]}
        say(f"ndcg@10 {mine} - {other}: {d:+.4f} (95% CI {lo:+.4f}..{hi:+.4f}, "
            "listeners resampled)")
    return models, gain


class ReadIntents:
    """What the served pipeline does with a request once its text is read into an intent
    (``podrec.llm.intents``): items naming an exclusion are dropped, and a text of several
    topics gives each topic its share of the list (``recommend.topic_balance``)."""

    def __init__(self, intents: Sequence[Intent], catalog: Any, embedder: TextEmbedder,
                 cache_dir: Path, topic_balance: float) -> None:
        self.intents, self.catalog, self.topic_balance = intents, catalog, topic_balance
        texts = sorted({t for i in intents if len(i.topics) > 1 for t in i.topics})
        vectors = embed_cached(embedder, texts, cache_dir, queries=True) if texts else []
        self.topic_vectors = dict(zip(texts, vectors, strict=True))

    def counts(self) -> dict[str, int]:
        return {"several_topics": sum(len(i.topics) > 1 for i in self.intents),
                "exclusions": sum(bool(i.exclusions) for i in self.intents)}

    def apply(self, request: int, ranked: np.ndarray, k: int) -> np.ndarray:
        """The top ``k`` of a ranked pool once request ``request``'s intent is applied."""
        intent = self.intents[request]
        if intent.exclusions:
            ranked = ranked[~excluded_mask(self.catalog, intent.exclusions, ranked)]
        if len(intent.topics) > 1 and self.topic_balance > 0 and len(ranked):
            topics = np.vstack([self.topic_vectors[t] for t in intent.topics])
            interest = np.argmax(self.catalog.vectors[ranked] @ topics.T, axis=1)
            keep = balance(ranked, interest, [1.0] * len(topics), k, self.topic_balance)
            ranked = np.concatenate([ranked[keep], np.delete(ranked, keep)])
        return ranked[:k]


def evaluate_intents(data: EvalData, requests: Sequence[IntentRequest], ks: Sequence[int],
                     embedder: TextEmbedder, cache_dir: Path, seed: int = 0,
                     min_history: int = 5, profile_params: dict[str, Any] | None = None,
                     progress: Progress | None = None,
                     topic_balance: float = RecommendConfig().topic_balance) -> dict[str, Any]:
    """Context-free against intent-aware ranking by the same profile, on requests that carry
    an intent, and the intent-aware ranking again with the text read into an intent as the
    served pipeline reads it (by the rules, the offline default). Listeners are halved
    (seeded): the intent weight is chosen on one half by NDCG@10 and every figure is reported
    on the other."""
    say = progress or (lambda _m: None)
    fold = make_intent_fold(data, requests, embedder, cache_dir, min_history)
    if len(fold.requests) < 4:
        raise ValueError(f"only {len(fold.requests)} intent requests match the catalog and "
                         f"have {min_history}+ earlier events; need at least 4")
    users = fold.users
    listeners = sorted(set(users))
    rng = np.random.default_rng(seed)
    val_users = set(rng.permutation(listeners)[: len(listeners) // 2].tolist())
    is_val = np.array([u in val_users for u in users])
    val_idx, test_idx = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    say(f"intent requests: {len(fold.requests)} from {len(listeners)} listeners "
        f"({len(val_idx)} for validation, {len(test_idx)} for test)")
    params = dict(profile_params or {})
    weights = {k: v for k, v in params.items() if k in ContentWeights.__dataclass_fields__}
    rest = {k: v for k, v in params.items() if k not in weights}
    base = ProfileModel(replace(ContentWeights(expand_k=0), **weights), **rest)
    base.fit(data.catalog, data.interactions)
    kmax = max(max(ks), 10)
    # The intent adds intent_weight x the cosine weight x the text's similarity to each item
    # (ProfileModel.context_scores), so each request's profile is scored once and every
    # weight is a sum; tests/test_evaluate.py checks that this is what ProfileModel.score
    # gives with the intent in the batch.
    say(f"scoring {len(fold.requests)} listener profiles")
    plain = base.score(replace(fold.batch, intent_vectors=None))
    assert fold.batch.intent_vectors is not None
    sims = np.vstack([base.content.index.similarities(v) for v in fold.batch.intent_vectors])
    seen = sparse.csr_matrix(fold.batch.histories)

    def run(weight: float, idx: np.ndarray) -> list[np.ndarray]:
        return _top(plain[idx] + weight * base.weights.cosine * sims[idx], seen[idx], kmax)

    chosen, best, validation = _choose_weight(run, val_idx, fold.targets[val_idx], say)
    base.intent_weight = chosen
    targets = fold.targets[test_idx]
    reader = ReadIntents([parse_rules(r.text) for r in fold.requests], data.catalog, embedder,
                         cache_dir, topic_balance)
    pool = _top(plain[test_idx] + chosen * base.weights.cosine * sims[test_idx],
                seen[test_idx], max(10 * kmax, 100))
    read = [reader.apply(int(i), ranked, kmax) for i, ranked in zip(test_idx, pool, strict=True)]
    per = {"profile (no context)": _per_request(run(0.0, test_idx), targets, ks),
           "profile + intent": _per_request(run(chosen, test_idx), targets, ks),
           "profile + intent, read": _per_request(read, targets, ks),
           "intent text alone": _per_request(_top(sims[test_idx], seen[test_idx], kmax),
                                             targets, ks)}
    groups = [users[i] for i in test_idx]
    models, gain = _compare(per, groups, seed, say)
    return {"protocol": {"protocol": "intent", "seed": seed, "min_history": min_history,
                         "session_seconds": SESSION_SECONDS},
            "ks": list(ks),
            "data": {"requests": len(fold.requests), "listeners": len(listeners),
                     "validation_requests": int(len(val_idx)),
                     "test_requests": int(len(test_idx)), "embedder": embedder.model_id,
                     "read_as": reader.counts() | {"reader": "rules",
                                                   "topic_balance": topic_balance}},
            "chosen": {"intent_weight": chosen, "validation_ndcg@10": round(best, 4),
                       "profile": base.params() | {"intent_weight": chosen},
                       "validation_ndcg@10_by_weight": validation},
            "models": models, "differences": gain}
