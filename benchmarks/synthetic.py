"""Synthetic podcast catalogs and listening events of any size, for benchmarks only.

No public catalog of 1M episodes with listeners exists here, so benchmarks at scale run on
one made from the real data sets in ``../shared/data``:

- **text**: every show's title, author, description and categories are recombined from real
  shows (Apple Podcasts, Listen Notes, Podcast Index trending, Spotify; a title may be spliced
  from two real titles of the same language, the author taken from a third show); episode
  titles from real Listen Notes episode titles (spliced the same way, and numbered the way a
  show numbers them), descriptions from real sentences of that language, cut to a length drawn
  from the real episode descriptions' lengths, durations from the real audio lengths;
- **languages**: the real mix of the sources that state a language (Listen Notes, Podcast
  Index trending: a third not English, Spotify);
- **shows**: episode counts from a heavy tail (log-normal, median 30, 1% above ~1,000; the
  real charts' own counts, median 123, only describe popular shows), one publication per
  show-specific cadence (a week typical) back from the show's last episode (60% active, 40%
  stopped up to six years before 2026-11-30);
- **popularity**: Zipf (s = 1) over shows in a random order, times a decay over each show's
  back catalogue (newer episodes more played) and log-normal noise;
- **events**: listeners with power-law activity (P(n) ~ n^-2.1, 1 to 5,000 events, mean ~7),
  each drawn to one to three topics (a show's first category); 80% of a listener's events are
  on their topics, 20% anywhere, and within either the episode is drawn by popularity. A play
  (55%: progress 0.05-0.95), complete (25%), skip (8%), like (5%), dislike (2%) or subscribe
  (5%, to the episode's show); dated a few days after the episode came out (exponential, mean
  two weeks; never after 2026-11-30). One listener's events are in time order; listeners
  follow one another (the file is not globally time ordered).

Everything is streamed: memory holds a few numbers per episode and one block of events, so
1M episodes and 10M events are produced in bounded memory (about 1 GB at 1M episodes). The
same seed gives the same files byte for byte.

Files, which podrec's readers take (``podrec ingest catalog`` / ``podrec ingest events``):
``catalog.jsonl`` (the generic catalog format: shows, each followed by its episodes) and
``events.csv`` or ``events.jsonl`` (the generic event format; timestamps in Unix seconds),
plus ``manifest.json`` (sizes, seed, seconds).

    python benchmarks/synthetic.py --episodes 100000 --events 1000000 --out DIR \\
        --data ../shared/data [--seed 0] [--events-format csv|jsonl]

Importable: ``load_pools``, ``plan_catalog``, ``catalog_records``, ``event_blocks``,
``write_catalog``, ``write_events``, ``catalog_data`` (in-memory ``CatalogData`` with
e5-like vectors clustered by topic and show, for benchmarks that skip embedding).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from podrec.storage.store import normalise_key

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
END = 1_795_996_800.0  # 2026-11-30T00:00:00Z: the newest date anything carries
DAY = 86_400.0
FIRST = 1_104_537_600.0  # 2005-01-01: no episode is older
EVENT_TYPES = ("play", "complete", "skip", "like", "dislike", "subscribe")
EVENT_SHARES = (0.55, 0.25, 0.08, 0.05, 0.02, 0.05)
TOPICAL = 0.8  # share of a listener's events on their own topics
LANG_NAMES = {"english": "en", "german": "de", "spanish": "es", "french": "fr", "dutch": "nl",
              "italian": "it", "russian": "ru", "portuguese": "pt", "chinese": "zh",
              "turkish": "tr", "swedish": "sv", "polish": "pl", "japanese": "ja",
              "korean": "ko"}
NUMBERING = ("", "", "", "Ep. {n}: ", "#{n} - ", "{n}. ", "Episode {n}: ", "{n} | ")
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass
class RealShow:
    """One real show's text, the material synthetic shows are recombined from."""

    title: str
    author: str
    description: str
    categories: list[str]


@dataclass
class TextPools:
    """The real material, by language: shows, episode titles and description sentences, plus
    the real distributions of description lengths and durations."""

    languages: list[str]
    language_weights: np.ndarray
    shows: dict[str, list[RealShow]]
    episode_titles: dict[str, list[str]]
    sentences: dict[str, list[str]]
    # (language, topic) -> sentences and episode titles of that topic, where there are enough
    topic_sentences: dict[tuple[str, str], list[str]]
    topic_titles: dict[tuple[str, str], list[str]]
    description_lengths: np.ndarray
    durations: np.ndarray
    topics: list[str] = field(default_factory=list)


def _clean(text: Any) -> str:
    text = html.unescape(_TAGS.sub(" ", str(text or "")))
    return _SPACE.sub(" ", text).strip()


def _language(value: Any) -> str | None:
    text = str(value or "").strip().strip("[]'\" ").lower()
    text = LANG_NAMES.get(text, text)
    code = text.split("-")[0].split("_")[0]
    return code if re.fullmatch(r"[a-z]{2}", code) and code not in ("aa",) else None


def _split_categories(value: Any) -> list[str]:
    if not value:
        return []
    parts = re.split(r"\s*[|,]\s*", str(value).strip("[]"))
    return [p.strip(" '\"") for p in parts if p.strip(" '\"") and p.strip(" '\"") != "Genre"]


def _csv(path: Path) -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def load_pools(data: Path) -> TextPools:
    """Read the real data sets once (a few seconds); FileNotFoundError names a missing one."""
    needed = ["apple_podcasts_peterchong_2021/podcast_info.json",
              "listennotes_dec2017_subset/podcasts.csv",
              "listennotes_dec2017_subset/episodes.csv",
              "podcastindex_trending_rikadiana1_2026/podcasts_raw_enriched.csv",
              "spotify_shows_stochastic1017_2024/podcast_details.csv"]
    for rel in needed:
        if not (data / rel).is_file():
            raise FileNotFoundError(f"{data / rel}: missing; pass --data, the shared data "
                                    "folder (../shared/data)")
    shows: dict[str, list[RealShow]] = {}
    mix: dict[str, int] = {}

    def add(lang: str | None, title: Any, author: Any, desc: Any, cats: list[str],
            counted: bool) -> None:
        title = _clean(title)
        if not lang or not title:
            return
        shows.setdefault(lang, []).append(RealShow(title, _clean(author), _clean(desc), cats))
        if counted:
            mix[lang] = mix.get(lang, 0) + 1

    apple = data / "apple_podcasts_peterchong_2021"
    for name in ("podcast_info.json", "podcast_info_add.json"):
        if (apple / name).is_file():
            for r in json.loads((apple / name).read_text(encoding="utf-8")):
                add("en", r.get("title"), r.get("producer"), r.get("description"),
                    [r["genre"]] if r.get("genre") else [], False)
    mille = data / "apple_itunes_reviews_mille055_2023" / "podcasts.csv"
    if mille.is_file():
        for r in _csv(mille):
            add("en", r.get("title"), r.get("producer"), r.get("description"),
                [r["genre"]] if r.get("genre") else [], False)
    ln_lang: dict[str, str] = {}
    ln_topic: dict[str, str] = {}
    for r in _csv(data / "listennotes_dec2017_subset/podcasts.csv"):
        lang = _language(r.get("language"))
        ln_lang[r["id"]] = lang or ""
        ln_topic[r["id"]] = (_split_categories(r.get("categories")) or [""])[0]
        add(lang, r.get("title"), r.get("author"), r.get("description"),
            _split_categories(r.get("categories")), True)
    for r in _csv(data / "podcastindex_trending_rikadiana1_2026/podcasts_raw_enriched.csv"):
        add(_language(r.get("language_final") or r.get("language")), r.get("title"),
            r.get("author"), r.get("description"), _split_categories(r.get("categories")), True)
    for r in _csv(data / "spotify_shows_stochastic1017_2024/podcast_details.csv"):
        add(_language(r.get("languages")), r.get("name"), r.get("publisher"),
            r.get("description"), [], True)

    titles: dict[str, list[str]] = {}
    sentences: dict[str, list[str]] = {}
    by_topic: dict[tuple[str, str], list[str]] = {}
    titles_by_topic: dict[tuple[str, str], list[str]] = {}
    lengths, durations = [], []
    for r in _csv(data / "listennotes_dec2017_subset/episodes.csv"):
        lang = ln_lang.get(r.get("podcast_id") or "") or "en"
        topic = ln_topic.get(r.get("podcast_id") or "", "")
        title = _clean(r.get("title"))
        if title:
            titles.setdefault(lang, []).append(title)
            titles_by_topic.setdefault((lang, topic), []).append(title)
        desc = _clean(r.get("description"))
        lengths.append(len(desc))
        sentences.setdefault(lang, []).extend(_sentences(desc))
        by_topic.setdefault((lang, topic), []).extend(_sentences(desc))
        try:
            seconds = float(r.get("audio_length") or 0)
        except ValueError:
            seconds = 0.0
        if 30 <= seconds <= 6 * 3600:
            durations.append(seconds)
    for lang, pool in shows.items():
        for show in pool:
            sentences.setdefault(lang, []).extend(_sentences(show.description))
            if show.categories:
                by_topic.setdefault((lang, show.categories[0]), []).extend(
                    _sentences(show.description))
        if len(titles.get(lang, [])) < 50:  # few real episode titles: use the shows' words
            titles.setdefault(lang, []).extend(s.title for s in pool)
            titles[lang].extend(s[:80] for s in sentences.get(lang, [])[:2000])
    languages = sorted(lang for lang in mix if lang in shows and sentences.get(lang))
    weights = np.array([mix[lang] for lang in languages], dtype=np.float64)
    topics = sorted({s.categories[0] for pool in shows.values() for s in pool if s.categories})
    by_topic = {k: v for k, v in by_topic.items() if len(v) >= 100}
    titles_by_topic = {k: v for k, v in titles_by_topic.items() if len(v) >= 100}
    return TextPools(languages, weights / weights.sum(), shows, titles, sentences, by_topic,
                     titles_by_topic, np.asarray(lengths, dtype=np.int64),
                     np.asarray(durations), topics)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if 20 <= len(s) <= 400]


@dataclass
class Plan:
    """The numbers of a synthetic catalog: every episode's show, topic, popularity and date
    (what events need), and per show its language and the real show it starts from."""

    seed: int
    show_of: np.ndarray  # episode -> show (episodes of a show are contiguous)
    show_start: np.ndarray  # show -> its first episode (n_shows + 1 entries)
    show_language: np.ndarray  # show -> index into pools.languages
    show_base: np.ndarray  # show -> index into pools.shows[language]
    show_topic: np.ndarray  # show -> index into topics
    topics: list[str]
    popularity: np.ndarray  # episode -> expected plays (arbitrary scale)
    published: np.ndarray  # episode -> Unix seconds

    @property
    def n_episodes(self) -> int:
        return len(self.show_of)

    @property
    def n_shows(self) -> int:
        return len(self.show_start) - 1

    @property
    def topic(self) -> np.ndarray:
        """Episode -> topic index."""
        return self.show_topic[self.show_of]


def _base_categories(pools: TextPools, lang: str, base: int, rng: random.Random) -> list[str]:
    cats = pools.shows[lang][base].categories
    if cats:
        return cats
    with_cats = [s for s in pools.shows[lang][:500] if s.categories] or \
        [s for s in pools.shows["en"][:500] if s.categories]
    return rng.choice(with_cats).categories


def plan_catalog(n_episodes: int, pools: TextPools, seed: int = 0) -> Plan:
    """The numeric side of a catalog of ``n_episodes`` episodes (a second or two at 1M)."""
    if n_episodes < 1:
        raise ValueError("n_episodes must be at least 1")
    rng = np.random.default_rng(seed)
    counts: list[np.ndarray] = []
    total = 0
    while total < n_episodes:
        c = np.clip(np.round(rng.lognormal(np.log(30), 1.5, 4096)), 1, 10_000).astype(np.int64)
        counts.append(c)
        total += int(c.sum())
    sizes = np.concatenate(counts)
    cum = np.cumsum(sizes)
    n_shows = int(np.searchsorted(cum, n_episodes)) + 1
    sizes = sizes[:n_shows]
    sizes[-1] -= int(cum[n_shows - 1]) - n_episodes
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    show_of = np.repeat(np.arange(n_shows, dtype=np.int32), sizes)
    language = rng.choice(len(pools.languages), n_shows, p=pools.language_weights)
    base = np.array([rng.integers(len(pools.shows[pools.languages[lang]])) for lang in language],
                    dtype=np.int64)
    pick = random.Random(seed)
    topic_index = {t: i for i, t in enumerate(pools.topics)}
    show_topic = np.array([topic_index[_base_categories(pools, pools.languages[lang], int(b),
                                                        pick)[0]]
                           for lang, b in zip(language, base, strict=True)], dtype=np.int32)
    # popularity: Zipf over shows, a decay over each back catalogue, log-normal noise
    show_weight = 1.0 / rng.permutation(np.arange(1, n_shows + 1)) ** 1.0
    age_rank = (start[show_of + 1] - 1 - np.arange(n_episodes)).astype(np.float64)  # 0: newest
    popularity = show_weight[show_of] * (1.0 + age_rank / 10.0) ** -0.7 * \
        rng.lognormal(0.0, 0.5, n_episodes)
    popularity = popularity / popularity.sum() * 1e8
    # dates: back from each show's last episode at the show's cadence
    active = rng.random(n_shows) < 0.6
    gap = np.where(active, rng.exponential(7 * DAY, n_shows),
                   rng.uniform(30 * DAY, 6 * 365 * DAY, n_shows))
    cadence = rng.lognormal(np.log(7 * DAY), 0.8, n_shows)
    steps = cadence[show_of] * rng.lognormal(0.0, 0.3, n_episodes)
    suffix = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])  # steps from i to the end
    within = suffix[:-1] - steps - suffix[start[show_of + 1]]  # steps after i in its show
    room = np.maximum(END - gap - FIRST, DAY)  # a show older than podcasts runs faster
    within *= np.minimum(1.0, room / np.maximum(within[start[:-1]], 1.0))[show_of]
    published = np.maximum(END - gap[show_of] - within, FIRST)
    return Plan(seed, show_of, start, language.astype(np.int32), base, show_topic,
                list(pools.topics), popularity.astype(np.float64), np.round(published))


def _splice(rng: random.Random, pool: list[str]) -> str:
    """A real title, or the first half of one and the second half of another."""
    a = rng.choice(pool)
    if rng.random() < 0.5:
        return a
    b = rng.choice(pool)
    wa, wb = a.split(), b.split()
    if len(wa) < 2 or len(wb) < 2:
        return a
    return " ".join(wa[:len(wa) // 2] + wb[len(wb) // 2:])


def _description(rng: random.Random, pool: list[str], length: int) -> str:
    out: list[str] = []
    size = 0
    while size < length and len(out) < 40:
        s = rng.choice(pool)
        out.append(s)
        size += len(s) + 1
    return " ".join(out)


def catalog_records(plan: Plan, pools: TextPools) -> Iterator[dict[str, Any]]:
    """The catalog's rows in the generic catalog format: each show, then its episodes."""
    rng = random.Random(plan.seed + 1)
    seen_shows: set[str] = set()
    for s in range(plan.n_shows):
        lang = pools.languages[int(plan.show_language[s])]
        real = pools.shows[lang]
        base = real[int(plan.show_base[s])]
        title = base.title if rng.random() < 0.5 else _splice(rng, [base.title, rng.choice(
            real).title])
        author = rng.choice(real).author or base.author or "Unknown"
        key = normalise_key(title, author)
        k = 2
        while key in seen_shows:  # two shows the store would take for one
            title = f"{title.rsplit(' #', 1)[0]} #{k}"
            key, k = normalise_key(title, author), k + 1
        seen_shows.add(key)
        cats = _base_categories(pools, lang, int(plan.show_base[s]), rng)
        lo, hi = int(plan.show_start[s]), int(plan.show_start[s + 1])
        show_id = f"s{s}"
        show_desc = base.description or _description(rng, pools.sentences[lang], 300)
        yield {"id": show_id, "kind": "show", "title": title, "author": author,
               "description": show_desc, "categories": cats, "language": lang,
               "feed_url": f"https://feeds.example.org/{show_id}.xml",
               "popularity": round(float(plan.popularity[lo:hi].sum()), 3),
               "published": int(plan.published[hi - 1])}
        numbering = rng.choice(NUMBERING)
        duration = float(rng.choice(pools.durations))
        titles = pools.topic_titles.get((lang, cats[0]), pools.episode_titles[lang])
        sentences = pools.topic_sentences.get((lang, cats[0]), pools.sentences[lang])
        used: set[str] = set()
        for e in range(lo, hi):
            t = _splice(rng, titles)
            if numbering:
                t = numbering.format(n=e - lo + 1) + t
            key = normalise_key(t)
            while key in used:  # two episodes the store would take for one
                t = f"{t} (part {rng.randint(2, 9)})"
                key = normalise_key(t)
            used.add(key)
            length = int(rng.choice(pools.description_lengths))
            yield {"id": f"e{e}", "kind": "episode", "show_id": show_id, "title": t,
                   "description": _description(rng, sentences, length) if length else "",
                   "author": author, "categories": cats, "language": lang,
                   "guid": f"{show_id}-{e - lo + 1}",
                   "audio_url": f"https://media.example.org/{show_id}/{e - lo + 1}.mp3",
                   "duration_s": int(duration * rng.lognormvariate(0.0, 0.3)),
                   "published": int(plan.published[e]),
                   "popularity": round(float(plan.popularity[e]), 3)}


@dataclass
class EventBlock:
    """A block of events as arrays: listener numbers, episode numbers, event type index,
    value (NaN: none) and Unix seconds. A subscribe's item is the episode's show."""

    users: np.ndarray
    episodes: np.ndarray
    types: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def _samplers(plan: Plan) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Per topic: its episodes and their cumulative popularity; and the same over all."""
    topic = plan.topic
    order = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[order], np.arange(len(plan.topics) + 1))
    members = [order[bounds[t]:bounds[t + 1]] for t in range(len(plan.topics))]
    cums = [np.cumsum(plan.popularity[m]) for m in members]
    return members, cums, np.arange(plan.n_episodes), np.cumsum(plan.popularity)


def event_blocks(plan: Plan, n_events: int, seed: int = 1, block: int = 500_000
                 ) -> Iterator[EventBlock]:
    """``n_events`` events in blocks of about ``block``, listener after listener."""
    rng = np.random.default_rng([seed, plan.seed])
    members, cums, everything, all_cum = _samplers(plan)
    topic_mass = np.array([c[-1] if len(c) else 0.0 for c in cums])
    topic_p = topic_mass / topic_mass.sum()
    next_user = 0
    made = 0
    while made < n_events:
        want = min(block, n_events - made)
        # power-law activity: P(n) ~ n^-2.1 on 1..5000
        acts = np.minimum(np.floor(rng.random(want) ** (-1 / 1.1)), 5000).astype(np.int64)
        cum = np.cumsum(acts)
        n_users = int(np.searchsorted(cum, want)) + 1
        acts = acts[:n_users]
        acts[-1] -= int(cum[n_users - 1]) - want
        users = np.repeat(np.arange(next_user, next_user + n_users), acts)
        k = np.minimum(rng.geometric(0.6, n_users), 3)
        liked = rng.choice(len(topic_p), (n_users, 3), p=topic_p)
        slot = (rng.random(want) * k[users - next_user]).astype(np.int64)
        topic = liked[users - next_user, slot]
        topic[rng.random(want) >= TOPICAL] = -1
        episodes = np.empty(want, dtype=np.int64)
        for t in np.unique(topic):
            at = np.flatnonzero(topic == t)
            m, c = (everything, all_cum) if t < 0 else (members[t], cums[t])
            pick = np.searchsorted(c, rng.random(len(at)) * c[-1], side="right")
            episodes[at] = m[np.minimum(pick, len(m) - 1)]
        types = rng.choice(len(EVENT_TYPES), want, p=EVENT_SHARES)
        values = np.full(want, np.nan)
        play, skip = types == 0, types == 2
        values[play] = np.round(rng.uniform(0.05, 0.95, int(play.sum())), 2)
        values[types == 1] = 1.0
        values[skip] = np.round(rng.uniform(0.0, 0.1, int(skip.sum())), 2)
        times = np.minimum(plan.published[episodes] + rng.exponential(14 * DAY, want),
                           END).astype(np.int64)
        order = np.lexsort((times, users))
        next_user += n_users
        made += want
        yield EventBlock(users[order], episodes[order], types[order], values[order],
                         times[order])


def _event_lines(plan: Plan, b: EventBlock, fmt: str) -> list[str]:
    shows = plan.show_of[b.episodes].tolist()
    out = []
    for u, e, t, v, ts, s in zip(b.users.tolist(), b.episodes.tolist(), b.types.tolist(),
                                  b.values.tolist(), b.times.tolist(), shows, strict=True):
        kind, item = ("show", f"s{s}") if t == 5 else ("episode", f"e{e}")
        if fmt == "csv":
            out.append(f"u{u},{kind},{item},{EVENT_TYPES[t]},{'' if v != v else v},{ts}\n")
        else:
            value = "null" if v != v else v
            out.append(f'{{"user_id": "u{u}", "item_kind": "{kind}", "item_id": "{item}", '
                       f'"event": "{EVENT_TYPES[t]}", "value": {value}, "timestamp": {ts}}}\n')
    return out


def write_events(plan: Plan, path: Path, n_events: int, seed: int = 1, fmt: str = "csv"
                 ) -> int:
    """Write ``n_events`` events (CSV or JSONL); returns how many listeners they have."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"events format must be csv or jsonl, got {fmt!r}")
    listeners = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            f.write("user_id,item_kind,item_id,event,value,timestamp\n")
        for b in event_blocks(plan, n_events, seed):
            f.writelines(_event_lines(plan, b, fmt))
            listeners = int(b.users[-1]) + 1 if len(b) else listeners
    return listeners


def write_catalog(plan: Plan, pools: TextPools, path: Path) -> int:
    """Write the catalog as JSONL; returns the number of rows (shows and episodes)."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        buf: list[str] = []
        for rec in catalog_records(plan, pools):
            buf.append(json.dumps(rec, ensure_ascii=False))
            if len(buf) >= 10_000:
                f.write("\n".join(buf) + "\n")
                n, buf = n + len(buf), []
        if buf:
            f.write("\n".join(buf) + "\n")
            n += len(buf)
    return n


def catalog_data(plan: Plan, pools: TextPools, dim: int = 384, with_text: bool = True
                 ) -> Any:
    """The episodes as podrec's ``CatalogData``, with unit vectors like e5's: a common
    direction plus the topic's and the show's directions plus noise (no embedding run)."""
    from podrec.model.base import CatalogData

    rng = np.random.default_rng([plan.seed, 7])
    n = plan.n_episodes
    scales = (np.arange(1, dim + 1) ** -0.3).astype(np.float32)
    scales /= np.sqrt((scales ** 2).sum())
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    topic_dirs = rng.standard_normal((len(plan.topics), dim)).astype(np.float32) * scales
    show_dirs = rng.standard_normal((plan.n_shows, dim)).astype(np.float32) * scales
    vectors = np.empty((n, dim), dtype=np.float32)
    topic = plan.topic
    for s in range(0, n, 65536):
        sl = slice(s, min(n, s + 65536))
        noise = rng.standard_normal((sl.stop - s, dim)).astype(np.float32) * scales
        x = common + 0.3 * topic_dirs[topic[sl]] + 0.3 * show_dirs[plan.show_of[sl]] + \
            0.35 * noise
        vectors[sl] = x / np.linalg.norm(x, axis=1, keepdims=True)
    titles, texts, cats, authors, langs, durations = [], [], [], [], [], []
    if with_text:
        for rec in catalog_records(plan, pools):
            if rec["kind"] != "episode":
                continue
            titles.append(rec["title"])
            texts.append(f"{rec['title']}. {' '.join(rec['categories'])}. "
                         f"{rec['description'][:1000]}")
            cats.append(rec["categories"])
            authors.append(rec["author"])
            langs.append(rec["language"])
            durations.append(rec["duration_s"])
    else:
        titles = [f"Episode {e}" for e in range(n)]
        texts = [plan.topics[t] for t in topic]
        cats = [[plan.topics[t]] for t in topic]
        authors = [f"a{s}" for s in plan.show_of]
        langs = [pools.languages[int(plan.show_language[s])] for s in plan.show_of]
        durations = [1800] * n
    return CatalogData(
        ids=[f"e{e}" for e in range(n)], kinds=["episode"] * n, vectors=vectors,
        titles=titles, categories=cats, authors=authors,
        popularity=plan.popularity.astype(np.float32), languages=langs, texts=texts,
        show_ids=[f"s{s}" for s in plan.show_of],
        durations=np.asarray(durations, dtype=np.float32), published=plan.published.copy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--events-format", choices=("csv", "jsonl"), default="csv")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.events < 0:
        parser.error("--episodes must be at least 1 and --events at least 0")
    try:
        pools = load_pools(args.data)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = plan_catalog(args.episodes, pools, args.seed)
    rows = write_catalog(plan, pools, args.out / "catalog.jsonl")
    catalog_s = time.perf_counter() - t0
    manifest: dict[str, Any] = {
        "episodes": plan.n_episodes, "shows": plan.n_shows, "catalog_rows": rows,
        "seed": args.seed, "catalog_s": round(catalog_s, 1),
        "languages": dict(zip(pools.languages, np.bincount(
            plan.show_language, minlength=len(pools.languages)).tolist(), strict=True))}
    print(f"catalog: {plan.n_shows} shows, {plan.n_episodes} episodes in {catalog_s:.1f} s",
          flush=True)
    if args.events:
        t0 = time.perf_counter()
        name = f"events.{args.events_format}"
        listeners = write_events(plan, args.out / name, args.events, args.seed + 1,
                                 args.events_format)
        manifest |= {"events": args.events, "listeners": listeners, "events_file": name,
                     "events_s": round(time.perf_counter() - t0, 1)}
        print(f"events: {args.events} from {listeners} listeners in "
              f"{manifest['events_s']} s", flush=True)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
