"""The `podrec` command line (Typer): a thin layer over podrec.service.Podrec."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from podrec.batch.runner import BatchError
from podrec.config import ConfigError, load_config
from podrec.records import IngestReport
from podrec.service import NotFoundError, Podrec, Recommendation
from podrec.storage import StoreError

app = typer.Typer(help="podrec: personalised podcast recommendations.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
ingest_app = typer.Typer(help="Bring feeds, catalogs and events into the store.",
                         no_args_is_help=True)
catalog_app = typer.Typer(help="Look at what is stored.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(catalog_app, name="catalog")
users_app = typer.Typer(help="Listeners: profiles, linked accounts, export, delete.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file")]
DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (overrides PODREC_DB)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="how many")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDRESS", help="run as Ray tasks: local (a cluster of this machine's "
    "cores), auto, host:port or ray://host:port (default: ray.address; empty: here)")]


@contextmanager
def _open(config: Path | None, db: str | None) -> Any:
    """A Podrec, with every expected failure turned into one clear line and exit code 2."""
    try:
        podrec = Podrec(load_config(config), database_url=db)
    except (ConfigError, StoreError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        yield podrec
    except (NotFoundError, ValueError, StoreError, BatchError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        podrec.close()


@contextmanager
def _runner(address: str | None, config: Any) -> Any:
    """Where batch work runs (``--ray``, else ``ray.address``), closed afterwards; a Ray
    that is missing or unreachable is one clear line and exit code 2."""
    from podrec.batch import make_runner

    try:
        runner = make_runner(address, config)
    except BatchError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    try:
        yield runner
    finally:
        runner.close()


def _print_report(report: IngestReport, as_json: bool, max_problems: int = 50) -> None:
    if as_json:
        print(json.dumps({**report.summary(), "duplicates": report.duplicates,
                          "problems": [str(p) for p in report.problems],
                          "repairs": [str(p) for p in report.repairs]}, ensure_ascii=False))
        return
    for problem in report.problems[:max_problems]:
        err.print(f"[yellow]skipped[/yellow] {problem}", markup=True, highlight=False)
    if len(report.problems) > max_problems:
        err.print(f"… and {len(report.problems) - max_problems} more problems")
    for note in report.repairs[:max_problems]:
        err.print(f"[cyan]repaired[/cyan] {note}", markup=True, highlight=False)
    if len(report.repairs) > max_problems:
        err.print(f"… and {len(report.repairs) - max_problems} more repairs")
    s = report.summary()
    console.print(f"added {s['added']}, updated {s['updated']}, skipped {s['skipped']} "
                  f"({report.duplicates} duplicates, {report.unchanged} unchanged), "
                  f"failed {s['failed']}, repaired {s['repaired']}")


@ingest_app.command("feeds")
def ingest_feeds(
    sources: Annotated[list[str], typer.Argument(help="feed files, folders, OPML files or URLs")],
    user: Annotated[str | None, typer.Option(help="record OPML subscriptions for this user")]
    = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """RSS/Atom/iTunes feeds and OPML subscription lists."""
    with _open(config, db) as podrec:
        _print_report(podrec.ingest_feeds(sources, user_id=user), as_json)


@ingest_app.command("catalog")
def ingest_catalog(
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or JSON catalog file")],
    fmt: Annotated[str | None, typer.Option("--format", help="generic, apple, apple-csv, "
                                            "listennotes, podcastindex, podcastindex-trending, "
                                            "spotify, movielens, lastfm; detected when left "
                                            "out")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """A catalog file in the generic format or one of the public dumps' formats."""
    with _open(config, db) as podrec:  # a FormatError is a ValueError: one line, exit 2
        _print_report(podrec.ingest_catalog(file, fmt), as_json)


@ingest_app.command("events")
def ingest_events(
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or .dat event file")],
    fmt: Annotated[str | None, typer.Option("--format", help="generic, movielens, lastfm, "
                                            "apple-reviews; detected when left out")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Listening events in the generic event format or one of the public dumps' formats."""
    with _open(config, db) as podrec:
        _print_report(podrec.ingest_events(file, fmt), as_json)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


@app.command()
def enrich(
    kind: Annotated[str | None, typer.Option(help="show or episode (default: both)")] = None,
    force: Annotated[bool, typer.Option(help="re-embed everything")] = False,
    llm_tags: Annotated[bool, typer.Option("--llm-tags", help="also write generated topical "
                                           "tags with the [llm] generator (seconds an item "
                                           "on the local model; cached)")] = False,
    llm_limit: Annotated[int | None, typer.Option(min=1, help="generate tags for only the "
                                                  "N most popular items")] = None,
    ray: RayOpt = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Embed and tag items whose text is new or changed."""
    with _open(config, db) as podrec, _runner(ray, podrec.config) as runner, \
            _progress() as bar:
        task = bar.add_task(f"embedding with {podrec.embedder_model_id}", total=None)
        report = podrec.enrich(kind=kind, force=force,
                               progress=lambda n: bar.advance(task, n),
                               on_total=lambda n: bar.update(task, total=n), runner=runner)
        summary: dict[str, Any] = report.summary()
        if llm_tags:
            summary["llm_tags"] = _generate_tags(podrec, bar, kind, llm_limit, runner)
    if as_json:
        print(json.dumps(summary))
        return
    s = summary
    console.print(f"embedded {s['embedded']}, reused {s['reused']} (same text), "
                  f"unchanged {s['unchanged']}, tagged {s['tagged']}")
    if llm_tags:
        t = s["llm_tags"]
        why = ", ".join(f"{r}: {n}" for r, n in t["reasons"].items())
        console.print(f"generated tags with {t['model']}: {t['generated']} generated, "
                      f"{t['cached']} cached, {t['fell_back']} fell back"
                      f"{f' ({why})' if why else ''}, in {t['seconds']} s")


def _generate_tags(podrec: Podrec, bar: Progress, kind: str | None,
                   limit: int | None, runner: Any = None) -> dict[str, Any]:
    """`enrich --llm-tags`: generated tags for the catalog, with their own progress bar."""
    from podrec.enrich.generated import generate_tags
    from podrec.llm import make_generator

    generator = make_generator(podrec.config, podrec.store)
    task = bar.add_task(f"tagging with {generator.model_id}", total=None)
    try:
        report = generate_tags(podrec.store, generator, kind=kind, limit=limit,
                               topics=podrec.config.llm.tags,
                               progress=lambda n: bar.advance(task, n),
                               on_total=lambda n: bar.update(task, total=n), runner=runner,
                               llm=podrec.config.llm,
                               chunk_items=podrec.config.ray.chunk_items)
    finally:
        generator.close()
    return {"model": generator.model_id, **report.summary()}


@app.command()
def train(
    kind: Annotated[list[str] | None, typer.Option(help="show and/or episode (default: "
                                                   "every kind with embedded items)")] = None,
    protocol: Annotated[str | None, typer.Option(help="validation split protocol "
                                                 "(train.protocol)")] = None,
    seed: Annotated[int | None, typer.Option(help="validation split seed "
                                             "(train.seed)")] = None,
    ray: RayOpt = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Choose and fit the served model on the stored events (as `evaluate` chooses: each
    part's parameters and the hybrid's blend on a validation split), and save it as a new
    version in the store. Servers load it within a second. With --ray, the grid points and
    fits run as Ray tasks (the same choices as here)."""
    overrides: dict[str, Any] = {}
    if protocol is not None:
        overrides["protocol"] = protocol
    if seed is not None:
        overrides["seed"] = seed
    reports = []
    with _open(config, db) as podrec, _runner(ray, podrec.config) as runner:
        counts = podrec.catalog_stats()["items"]
        kinds = kind or [k for k in ("show", "episode") if counts.get(k)]
        for k in kinds:
            with console.status(f"training the {k} model") as status:
                report = podrec.train(k, progress=lambda m, s=status: (
                    s.update(m[:120]), err.print(f"[dim]{m}[/dim]")), runner=runner,
                    **overrides)
            reports.append(report)
    if as_json:
        print(json.dumps([{"kind": r.kind, "version": r.version} | r.meta for r in reports],
                         default=str))
        return
    for r in reports:
        data = r.meta["data"]
        console.print(f"[bold]{r.kind}[/bold]: saved version {r.version} "
                      f"({r.meta['model']}, {data['events']} events, {data['listeners']} "
                      f"listeners, {r.meta['seconds']} s)")
        if r.fallback:
            console.print(f"  [yellow]fallback:[/yellow] {r.fallback}")
        for part, q in r.meta["validation"].items():
            if part != "blend" and q is not None:
                console.print(f"  {part}: validation ndcg@10 {q}")


def _print_recs(recs: list[Recommendation], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps([r.to_dict() for r in recs], ensure_ascii=False, indent=2))
        return
    table = Table(title=title, title_justify="left")
    explained = any(r.reason for r in recs)
    for col in ("#", "id", "title", "author", "categories", "score") + (
            ("why",) if explained else ()):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(recs, 1):
        table.add_row(str(i), r.id, r.title, r.author or "", ", ".join(r.categories[:3]),
                      f"{r.score:.3f}", *((r.reason or "",) if explained else ()))
    console.print(table)


@app.command()
def similar(
    item_id: Annotated[str, typer.Argument(metavar="ID", help="a show or episode id")],
    k: KOpt = 10,
    metric: Annotated[str | None, typer.Option(help="cosine (default) or euclidean")] = None,
    kind: Annotated[str | None, typer.Option(help="show or episode, if the id is both")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Shows (or episodes) most like one item."""
    with _open(config, db) as podrec:
        recs = podrec.similar(item_id, k=k, metric=metric, kind=kind)
        _print_recs(recs, as_json, f"Like {podrec.get_item(item_id, kind).title}")


@app.command()
def recommend(
    user: Annotated[str | None, typer.Option(help="a known listener's id")] = None,
    seed: Annotated[list[str] | None, typer.Option(help="a show id the listener likes "
                                                   "(repeat for several)")] = None,
    query: Annotated[str | None, typer.Option(help="free text, any language")] = None,
    k: KOpt = 10,
    kind: Annotated[str, typer.Option(help="recommend shows or episodes")] = "show",
    diversity: Annotated[float, typer.Option(min=0.0, max=1.0, help="0 = most relevant "
                                             "first, 1 = most varied (MMR)")] = 0.0,
    explain: Annotated[bool, typer.Option("--explain", help="say why, per item")] = False,
    language: Annotated[list[str] | None, typer.Option(help="only these languages "
                                                       "(repeat for several)")] = None,
    no_explicit: Annotated[bool, typer.Option("--no-explicit", help="leave out explicit "
                                              "items")] = False,
    block: Annotated[list[str] | None, typer.Option(help="an item or show id to leave out "
                                                    "(repeat for several)")] = None,
    per_show: Annotated[int | None, typer.Option(min=1, help="at most this many episodes "
                                                 "of one show")] = None,
    platform: Annotated[str | None, typer.Option(help="the platform asking: items not "
                                                 "available there are left out")] = None,
    hour: Annotated[int | None, typer.Option(min=0, max=23, help="context: the listener's "
                                             "local hour")] = None,
    weekday: Annotated[int | None, typer.Option(min=0, max=6, help="context: day of the "
                                                "week, 0 = Monday")] = None,
    device: Annotated[str | None, typer.Option(help="context: phone, car, speaker, "
                                               "desktop, ...")] = None,
    minutes: Annotated[float | None, typer.Option(min=1, help="context: minutes available "
                                                  "to listen")] = None,
    mood: Annotated[str | None, typer.Option(help="context: mood or intent in a few words "
                                             "(\"something calm before sleep\")")] = None,
    written: Annotated[bool, typer.Option("--written", help="with --explain: wait for the "
                                          "generative model to write the reasons it has not "
                                          "written before (seconds each on a CPU)")] = False,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Recommendations for a listener, from seed shows, or from a few words; optionally in
    a context (hour, weekday, device, minutes, mood)."""
    from podrec.recommend.context import RequestContext
    from podrec.recommend.request import RecommendRequest

    if not (user or seed or query):
        err.print("[red]error:[/red] give --user, --seed or --query")
        raise typer.Exit(2)
    context = RequestContext(hour=hour, weekday=weekday, device=device, minutes=minutes,
                             intent=mood)
    with _open(config, db) as podrec:
        request = RecommendRequest(
            user_id=user, seeds=tuple(seed or ()), query=query, k=k, kind=kind,
            diversity=diversity, explain=explain, languages=tuple(language or ()),
            allow_explicit=not no_explicit, blocked=tuple(block or ()), per_show=per_show,
            platform=platform, context=context)
        recs = podrec.recommend(request)
        if written and explain and any(r.reason_fallback == "pending" for r in recs):
            t0 = time.perf_counter()
            podrec.models.writer().wait()  # the reasons queued by this list, written now
            recs = podrec.recommend(request)
            if not as_json:
                console.print(f"[dim]wrote {sum(r.reason_source == 'generated' for r in recs)}"
                              f" of {len(recs)} reasons in {time.perf_counter() - t0:.1f} s "
                              "(cached: the next run is instant)[/dim]")
        label = " + ".join(x for x in [f"user {user}" if user else "",
                                       f"seeds {', '.join(seed)}" if seed else "",
                                       f"“{query}”" if query else ""] if x)
        _print_recs(recs, as_json, f"For {label}")
        if query and not as_json:
            _print_intent(podrec, query)


def _print_intent(podrec: Any, query: str) -> None:
    """How the words were read; a local model's reading is written now for the next run
    (a one-shot command has no background to leave it to)."""
    t0 = time.perf_counter()
    intent = podrec.read_intent(query, wait=True)
    took = time.perf_counter() - t0
    fields = [f"topics {', '.join(intent.topics) or '-'}"]
    fields += [f"not {', '.join(intent.exclusions)}"] if intent.exclusions else []
    fields += [f"at most {intent.max_minutes} min"] if intent.max_minutes else []
    fields += [f"language {intent.language}"] if intent.language else []
    fields += [f"mood {intent.mood}"] if intent.mood else []
    how = intent.source + (f", model {intent.fell_back}" if intent.fell_back else "")
    extra = f"; the model's reading took {took:.1f} s" if took > 0.5 else ""
    console.print(f"[dim]read as: {'; '.join(fields)} ({how}{extra})[/dim]")


@app.command()
def onboarding(
    k: KOpt = 12,
    language: Annotated[list[str] | None, typer.Option(help="only these languages")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Popular shows across genres for a new listener to pick from."""
    with _open(config, db) as podrec:
        _print_recs(podrec.onboarding(k, languages=language), as_json, "Pick a few you like")


@users_app.command("profile")
def users_profile(
    user: Annotated[str, typer.Argument(help="listener id")],
    plot: Annotated[Path | None, typer.Option(help="also draw the profile to this PNG")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """A listener's interests: share, top items, genres and listening hours of each."""
    with _open(config, db) as podrec:
        profile = podrec.profile(user)
    if plot:
        from podrec.profile.plot import plot_profile

        plot_profile(profile, plot)
    if as_json:
        print(json.dumps(profile, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Interests of {user} ({profile['events']} events, accounts: "
                  f"{', '.join(profile['accounts'])})", title_justify="left")
    for col in ("#", "interest", "share", "top items", "peak hours"):
        table.add_column(col, overflow="fold")
    for i, it in enumerate(profile["interests"], 1):
        hours = [h for h in sorted(range(24), key=lambda h: -it["hours"][h])[:3]
                 if it["hours"][h] > 0]
        name = it["label"] if it.get("summary_source") != "generated" \
            else f"{it['summary']} ({it['label']})"
        table.add_row(str(i), name, f"{it['weight']:.0%}",
                      "; ".join(x["title"] for x in it["items"][:3]),
                      ", ".join(f"{h}h" for h in sorted(hours)))
    console.print(table)
    if plot:
        console.print(f"wrote {plot}")


@app.command()
def summarise(
    user: Annotated[list[str] | None, typer.Option(help="listener id (repeat; default: "
                                                   "every listener)")] = None,
    kind: Annotated[str, typer.Option(help="show or episode")] = "show",
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write each listener's interest summaries with the [llm] generator now (cached: the
    profile shows them at once; seconds an interest on the local model)."""
    with _open(config, db) as podrec, _progress() as bar:
        users = user or podrec.store.list_users()
        task = bar.add_task(f"summarising with {podrec.models.generator().model_id}",
                            total=len(users))
        counts = podrec.summarise(users, kind, progress=lambda _: bar.advance(task))
    if as_json:
        print(json.dumps({"listeners": len(users), "interests": counts}))
        return
    console.print(f"{len(users)} listeners: " + (", ".join(
        f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no interests"))


@users_app.command("link")
def users_link(
    accounts: Annotated[list[str], typer.Argument(help="account ids of one person, e.g. "
                                                  "their ids on two platforms")],
    person: Annotated[str | None, typer.Option(help="person id (default: the first "
                                               "account's)")] = None,
    config: ConfigOpt = None, db: DbOpt = None,
) -> None:
    """Link one person's accounts: their events then make one profile."""
    with _open(config, db) as podrec:
        pid = podrec.link_users(accounts, person)
        console.print(f"linked {', '.join(podrec.store.linked_accounts(accounts[0]))} "
                      f"as person {pid}")


@users_app.command("export")
def users_export(
    user: Annotated[str, typer.Argument(help="listener id")],
    config: ConfigOpt = None, db: DbOpt = None,
) -> None:
    """Everything stored about a listener, as JSON."""
    with _open(config, db) as podrec:
        print(json.dumps(podrec.export_user(user), ensure_ascii=False, indent=2))


@users_app.command("delete")
def users_delete(
    user: Annotated[str, typer.Argument(help="listener id")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    config: ConfigOpt = None, db: DbOpt = None,
) -> None:
    """Delete a listener and every event they sent."""
    if not yes and not typer.confirm(f"delete listener {user} and all their events?"):
        raise typer.Exit(1)
    with _open(config, db) as podrec:
        out = podrec.delete_user(user)
        console.print(f"deleted {user} and {out['deleted_events']} events; "
                      f"{out['relinked_accounts']} linked accounts given a new person id, "
                      f"{out['scrubbed_models']} trained models cleared of them")


@app.command()
def purge(
    retain_days: Annotated[float | None, typer.Option(
        min=0, help="keep this many days of events (default: privacy.retain_days)")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Delete events older than the retention period (privacy.retain_days; 0: keep all)."""
    with _open(config, db) as podrec:
        out = podrec.purge(retain_days)
    if as_json:
        print(json.dumps(out))
    elif not out["retain_days"]:
        console.print("nothing purged: privacy.retain_days is 0 (events are kept); "
                      "pass --retain-days to purge now")
    else:
        console.print(f"purged {out['events']} events of {out['listeners']} listeners "
                      f"older than {out['retain_days']:g} days (before {out['before']})")


@catalog_app.command("list")
def catalog_list(
    kind: Annotated[str | None, typer.Option(help="show or episode")] = None,
    show: Annotated[str | None, typer.Option(help="episodes of this show id")] = None,
    tag: Annotated[str | None, typer.Option(help="items with this tag")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Stored shows and episodes, every normalised field."""
    with _open(config, db) as podrec:
        items = podrec.list_items(kind=kind, show_id=show, tag=tag, limit=limit, offset=offset)
    if as_json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return
    table = Table(title_justify="left")
    for col in ("kind", "id", "title", "language", "duration_s", "published", "tags"):
        table.add_column(col, overflow="fold")
    for it in items:
        tags = ", ".join(t["tag"] for t in it["tags"] if t["source"] != "keyphrase")[:60]
        table.add_row(it["kind"], it["id"], it["title"], it["language"] or "",
                      str(it["duration_s"] or ""), it["published"] or "", tags)
    console.print(table)


@catalog_app.command("show")
def catalog_show(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    kind: Annotated[str | None, typer.Option(help="show or episode, if the id is both")] = None,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """One item, every field and tag."""
    with _open(config, db) as podrec:
        data = podrec.item_details(item_id, kind)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = Table(show_header=False, title=f"{data['kind']} {data['id']}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if key == "tags":
            by_source: dict[str, list[str]] = {}
            for t in value:
                by_source.setdefault(t["source"], []).append(f"{t['tag']} ({t['score']:.2f})")
            for source, names in by_source.items():
                table.add_row(f"tags: {source}", ", ".join(names))
        else:
            table.add_row(key, "" if value is None else str(value))
    console.print(table)


@app.command()
def tags(
    source: Annotated[str | None, typer.Option(help="category, taxonomy, keyphrase or "
                                               "generated")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 30,
    config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """The most used tags (use `catalog list --tag T` for the items of one)."""
    with _open(config, db) as podrec:
        counts = podrec.store.tag_counts(source=source, limit=limit)
    if as_json:
        print(json.dumps([{"tag": t, "items": n} for t, n in counts], ensure_ascii=False))
        return
    table = Table("tag", "items")
    for t, n in counts:
        table.add_row(t, str(n))
    console.print(table)


@app.command("evaluate-similar")
def evaluate_similar_cmd(
    data: Annotated[Path, typer.Option(help="folder of the public data sets")] = Path(
        "../shared/data"),
    out: Annotated[Path, typer.Option(help="where to write similar.json/.md/.png")] = Path(
        "out/evaluate-similar"),
    db: Annotated[str | None, typer.Option(help="working database (embeddings are cached "
                                           "there between runs)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the validation/test split")] = 0,
    config: ConfigOpt = None,
) -> None:
    """Score similar-podcast lists against Apple's 'listeners also subscribed to' lists,
    beside popularity and TF-IDF baselines."""
    from podrec.evaluate.similar import APPLE_DIR, evaluate_similar, write_report

    catalog_file = data / APPLE_DIR / "podcast_info.json"
    if not catalog_file.exists():
        err.print(f"[red]error:[/red] {catalog_file} not found: pass --data DIR, the folder "
                  "that holds apple_podcasts_peterchong_2021/")
        raise typer.Exit(2)
    cfg = load_config(config)
    db = db or f"sqlite:///.cache/evaluate-similar-{cfg.embedder.name}.db"
    with _open(config, db) as podrec:
        report = podrec.ingest_catalog(catalog_file, "apple")
        err.print(f"catalog: {report.summary()}")
        with _progress() as bar:
            task = bar.add_task(f"embedding with {podrec.embedder_model_id}", total=None)
            podrec.enrich(kind="show", progress=lambda n: bar.advance(task, n),
                          on_total=lambda n: bar.update(task, total=n))
        catalog = podrec.catalog_data("show")
        result = evaluate_similar(catalog, data, seed=seed,
                                  embedder_name=podrec.embedder_model_id,
                                  default_weights=podrec.content_weights(),
                                  progress=lambda name: err.print(f"scoring {name}"))
    paths = write_report(result, out)
    console.print(result.markdown())
    console.print(f"learned weights: {result.weights}")
    console.print("wrote " + ", ".join(str(p) for p in paths))


@app.command("evaluate")
def evaluate_cmd(
    catalog: Annotated[Path, typer.Option(help="catalog file (any ingest catalog format)")],
    events: Annotated[Path, typer.Option(help="event file (any ingest events format)")],
    protocol: Annotated[str, typer.Option(help="temporal, leave-last, user-holdout, "
                                          "random or cold-items")] = "temporal",
    models: Annotated[str, typer.Option(help="comma-separated: pop, pop-recent, itemknn, "
                                        "ease, ials, bpr, content, profile-static, profile, "
                                        "profile-context, hybrid")] =
    "pop,itemknn,ease,ials,bpr,content,hybrid",
    k: Annotated[str, typer.Option("--k", help="cut-offs, comma-separated")] = "10,20",
    out: Annotated[Path, typer.Option(help="folder for results.json/.md and plots")] = Path(
        "out/evaluate"),
    seed: Annotated[int, typer.Option(help="seed of every split and model")] = 0,
    test_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    leave_n: Annotated[int, typer.Option(min=1, help="leave-last: pairs held out per "
                                         "listener")] = 1,
    catalog_format: Annotated[str | None, typer.Option(help="catalog format (detected when "
                                                       "left out)")] = None,
    events_format: Annotated[str | None, typer.Option(help="events format (detected when "
                                                      "left out)")] = None,
    embedder: Annotated[str | None, typer.Option(help="e5 or wordllama (default: config)")]
    = None,
    cache: Annotated[Path, typer.Option(help="embedding cache folder")] = Path(
        ".cache/embeddings"),
    text_evidence: Annotated[str, typer.Option(help="train: only text about training items "
                                               "counts; all: also text about the test items "
                                               "(review-text cold start)")] = "train",
    mmr: Annotated[str, typer.Option(help="also score every model re-ranked by MMR at these "
                                     "diversity levels, comma-separated (e.g. 0.3,0.6)")] = "",
    platforms: Annotated[bool, typer.Option("--platforms", help="the two-platform study: "
                                            "pairs split over pseudo-platforms A and B, "
                                            "B-only against linked histories")] = False,
    profile_params: Annotated[str, typer.Option(help="fix the profile's parameters instead "
                                                "of choosing them on validation, e.g. "
                                                "max_interests=5,half_life_days=30")] = "",
    intents: Annotated[Path | None, typer.Option(help="the intent study: requests with a "
                                                 "mood/intent text (MovieLens tags.csv, or "
                                                 "CSV user_id,item_id,text,timestamp); the "
                                                 "profile ranks each without and with it")]
    = None,
    served: Annotated[bool, typer.Option("--served", help="also replay the split through "
                                         "the real service: training events into a store, "
                                         "`podrec train`, every test list from "
                                         "Podrec.recommend (a sample over HTTP)")] = False,
    http_sample: Annotated[int, typer.Option(min=0, help="--served: lists also fetched from "
                                             "POST /recommendations")] = 50,
    balance: Annotated[str, typer.Option(help="--served: also list at these balance levels "
                                         "(comma-separated, e.g. 0,0.5,1), with NDCG and the "
                                         "calibration gap of each")] = "",
    ray: RayOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Offline evaluation from files alone: every model on the same split, baselines included.
    With --ray, the grid points and the test fits (the platform study's models, --served's
    harness and training) run as Ray tasks (the same figures)."""
    from podrec.enrich.embedders import make_embedder
    from podrec.evaluate.protocols import SplitConfig
    from podrec.evaluate.report import markdown, write_results

    names, ks, cfg = _check_evaluate_args(models, protocol, text_evidence, k, config)
    records, event_records = _read_evaluation_files(catalog, events, intents, catalog_format,
                                                    events_format)
    emb = make_embedder(embedder or cfg.embedder.name, cfg.embedder.batch_size)
    split = SplitConfig(protocol, test_fraction, leave_n=leave_n, seed=seed)
    if (ray or cfg.ray.address) and intents:
        err.print("note: --intents runs in this process (one profile fit and one scoring "
                  "pass); --ray applies to the comparison of models, the platform study and "
                  "--served's fits")
    with _runner(ray, cfg) as runner, _progress() as bar:
        task = bar.add_task("evaluating", total=None)

        def step(message: str) -> None:
            bar.update(task, description=message[:90])
            bar.console.print(message, highlight=False)

        try:
            results = _run_evaluation(
                records, event_records, emb, cache, cfg, split, names, ks, step,
                text_evidence=text_evidence, mmr=mmr, profile_params=profile_params,
                intents=intents, platforms=platforms, served=served, catalog=catalog,
                catalog_format=catalog_format, out=out, http_sample=http_sample,
                balances=balance, runner=runner)
        except (ValueError, BatchError) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
    results["files"] = {"catalog": str(catalog), "events": str(events)}
    paths = write_results(results, out)
    console.print(markdown(results))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def _check_evaluate_args(models: str, protocol: str, text_evidence: str, k: str,
                         config: Path | None) -> tuple[list[str], list[int], Any]:
    """Model names, cut-offs and the configuration, or one clear error line (exit 2)."""
    from podrec.evaluate.harness import MODELS
    from podrec.evaluate.protocols import PROTOCOLS

    names = [m.strip() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if text_evidence not in ("train", "all"):
        err.print(f"[red]error:[/red] --text-evidence must be train or all, not "
                  f"{text_evidence!r}")
        raise typer.Exit(2)
    if bad or protocol not in PROTOCOLS:
        what = f"unknown model(s) {', '.join(bad)}; expected {', '.join(MODELS)}" if bad else \
            f"unknown protocol {protocol!r}; expected {', '.join(PROTOCOLS)}"
        err.print(f"[red]error:[/red] {what}")
        raise typer.Exit(2)
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
        cfg = load_config(config)
    except (ValueError, ConfigError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return names, ks, cfg


def _read_evaluation_files(catalog: Path, events: Path, intents: Path | None,
                           catalog_format: str | None, events_format: str | None
                           ) -> tuple[list[Any], list[Any]]:
    """The catalog's items and the events, read as ingest reads them; bad records reported."""
    from podrec.ingest.datasets import FormatError, read_catalog
    from podrec.ingest.events import read_events

    report = IngestReport()
    for path in (catalog, events, *([intents] if intents else [])):
        if not path.is_file():
            err.print(f"[red]error:[/red] {path}: no such file")
            raise typer.Exit(2)
    try:
        records = list(read_catalog(catalog, report, catalog_format))
        event_records = list(read_events(events, report, events_format))
    except FormatError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    for problem in report.problems[:20]:
        err.print(f"[yellow]skipped[/yellow] {problem}", highlight=False)
    err.print(f"read {len(records)} items and {len(event_records)} events "
              f"({report.failed} records skipped)")
    return records, event_records


def _run_evaluation(records: list[Any], event_records: list[Any], emb: Any, cache: Path,
                    cfg: Any, split: Any, names: list[str], ks: list[int], step: Any,
                    **opts: Any) -> dict[str, Any]:
    """The study the options ask for: intents, platforms, served, or the plain comparison."""
    from podrec.evaluate.harness import evaluate, evaluate_platforms, prepare

    levels = [float(x) for x in opts["mmr"].split(",") if x.strip()]
    if any(not 0 < lvl <= 1 for lvl in levels):
        raise ValueError(f"--mmr levels must be in (0, 1], got {opts['mmr']!r}")
    balances = [float(x) for x in opts["balances"].split(",") if x.strip()]
    if any(not 0 <= b <= 1 for b in balances):
        raise ValueError(f"--balance levels must be in [0, 1], got {opts['balances']!r}")
    fixed = {"profile": _parse_params(opts["profile_params"])} if opts["profile_params"] \
        else None
    data = prepare(records, event_records, emb, cache, cfg.embedder.max_chars, step,
                   event_weights=cfg.event_weights.as_dict(), seed=split.seed)
    if opts["intents"] is not None:
        from podrec.evaluate.intent import evaluate_intents, read_intents

        return evaluate_intents(data, read_intents(opts["intents"]), ks, emb, cache,
                                seed=split.seed, progress=step,
                                topic_balance=cfg.recommend.topic_balance)
    if opts["platforms"]:
        return evaluate_platforms(data, split, names, ks, emb, cache, progress=step,
                                  runner=opts["runner"])
    if opts["served"]:
        from podrec.evaluate.served import evaluate_served

        return evaluate_served(data, event_records, opts["catalog"], opts["catalog_format"],
                               split, ks, emb, cache, opts["out"] / "served-store", cfg,
                               text_evidence=opts["text_evidence"],
                               http_sample=opts["http_sample"], progress=step,
                               balances=balances, runner=opts["runner"])
    return evaluate(data, split, names, ks, emb, cache, progress=step,
                    text_evidence=opts["text_evidence"], mmr_levels=levels, fixed=fixed,
                    runner=opts["runner"])


def _parse_params(text: str) -> dict[str, float | int]:
    """'max_interests=5,half_life_days=30' -> {'max_interests': 5, 'half_life_days': 30.0}."""
    from podrec.model.profile import ProfileModel

    known = {k for k, v in ProfileModel().params().items()
             if isinstance(v, int | float) and not isinstance(v, bool)}
    out: dict[str, float | int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--profile-params: expected name=value with a name among "
                             f"{', '.join(sorted(known))}; got {part!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--profile-params: {key}: expected a number, got "
                             f"{value.strip()!r}") from None
        out[key] = int(number) if key == "max_interests" else number
    return out


# `podrec serve` and `podrec keys`: the REST API (podrec/server/commands.py).
from podrec.server.commands import register as _register_server  # noqa: E402

_register_server(app)


def main() -> None:  # pragma: no cover - console entry for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
