"""`podrec serve` and `podrec keys ...` (registered on the main CLI by podrec/cli.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from podrec.config import ConfigError, load_config
from podrec.storage import Store, StoreError

console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file")]
DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (overrides PODREC_DB)")]

SERVE_THREADS = 2  # requests one worker computes at once (podrec.server.worker.SERVE_THREADS)

# Serving answers many small requests at once: one BLAS/OpenMP thread per worker process
# (set before a worker loads numpy; an operator's own setting wins).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

keys_app = typer.Typer(help="API keys of the REST API (stored hashed; shown once).",
                       no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def _store(config: Path | None, db: str | None) -> Store:
    try:
        return Store(db or load_config(config).database_url)
    except (ConfigError, StoreError) as exc:
        raise _fail(str(exc)) from None


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (server.host)")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="server.port")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="worker processes "
                                                "(server.workers)")] = None,
    config: ConfigOpt = None, db: DbOpt = None,
    warm: Annotated[bool, typer.Option(help="load the embedder and models at start-up rather "
                                       "than on the first request")] = True,
    threads: Annotated[int | None, typer.Option(
        min=1, max=256, help="requests each worker computes at once; more wait their turn "
        f"(default {SERVE_THREADS}: more threads only fight over Python's GIL)")] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """The REST API and web page (FastAPI + uvicorn). API docs at /docs."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    workers = workers or cfg.server.workers
    # The workers are fresh processes: they read the database and configuration from here.
    if config is not None:
        os.environ["PODREC_CONFIG"] = str(config.resolve())
    if db:
        os.environ["PODREC_DB"] = db
    os.environ["PODREC_SERVE_WARM"] = "1" if warm else "0"
    if threads is not None:
        os.environ["PODREC_SERVE_THREADS"] = str(threads)
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
    store = _store(config, db)  # create or migrate the schema once, before the workers
    dialect = store.engine.dialect.name
    store.close()
    if workers > 1 and dialect == "sqlite":
        err.print("[yellow]note:[/yellow] several workers share one SQLite file: writes "
                  "wait for each other; use PostgreSQL to scale")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="podrec-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    import uvicorn

    err.print(f"podrec serving {dialect} database on http://{host}:{port} "
              f"({workers} worker{'s' if workers > 1 else ''}); API docs at /docs",
              highlight=False)
    try:
        if workers > 1:
            _run_workers(uvicorn.Config(
                "podrec.server.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, access_log=access_log, log_level=log_level,
                timeout_graceful_shutdown=10))
        else:
            uvicorn.run("podrec.server.app:app_from_env", factory=True, host=host, port=port,
                        workers=1, access_log=access_log, log_level=log_level,
                        timeout_graceful_shutdown=10)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def tcp_listener(sock: socket.socket) -> socket.socket:
    """The same listening socket, saying it is TCP (``proto`` IPPROTO_TCP).

    uvicorn binds the socket of ``--workers N`` itself with ``proto`` left at 0; accepted
    connections inherit it, and asyncio sets TCP_NODELAY only on sockets whose ``proto`` is
    IPPROTO_TCP. Without it, a response written in two parts (headers, then body) waits for
    the client's delayed ACK: ~40 ms added to every keep-alive request on Linux
    (Kludex/uvicorn#3149). One worker is not affected: asyncio binds that socket itself."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM \
            and sock.proto != socket.IPPROTO_TCP:
        inheritable = sock.get_inheritable()
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        sock.set_inheritable(inheritable)
    return sock


def _run_workers(config: Any) -> None:
    """What ``uvicorn.run`` does for ``workers > 1``, over a listener with TCP_NODELAY."""
    from uvicorn.supervisors import Multiprocess

    try:
        Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()
    except KeyboardInterrupt:
        pass


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what the key is for")],
    scope: Annotated[str, typer.Option(help="admin (everything) or client (events, "
                                       "recommendations, catalog reads)")] = "client",
    config: ConfigOpt = None, db: DbOpt = None,
) -> None:
    """Create a key and print it (only its hash is stored: this is the one time it shows)."""
    store = _store(config, db)
    try:
        key = store.create_api_key(name, scope)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    err.print(f"created {scope} key {name!r} (id {key.split('_')[1]}); store it now, it is "
              "not shown again", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, db: DbOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every key: id, name, scope, when created and revoked (never the key itself)."""
    store = _store(config, db)
    try:
        keys = store.list_api_keys()
    finally:
        store.close()
    if as_json:
        print(json.dumps(keys))
        return
    table = Table("key id", "name", "scope", "created", "revoked")
    for k in keys:
        table.add_row(k["key_id"], k["name"], k["scope"], k["created_at"], k["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID",
                                                      help="the key id (or the whole key)")],
                config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Revoke a key: requests with it get 401 within server.key_cache_seconds (1 s)."""
    store = _store(config, db)
    try:
        revoked = store.revoke_api_key(key_id)
    finally:
        store.close()
    if not revoked:
        raise _fail(f"no live key with id {key_id!r}")
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add `serve` and `keys` to the main `podrec` command."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
