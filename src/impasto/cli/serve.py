"""``impasto serve [--host 127.0.0.1] [--port 8000] [--data DIR] [--workers N] [--token T]``: the web app.

Listens on 127.0.0.1 by default; any other address is reachable from other machines and needs ``--token`` (or
``IMPASTO_TOKEN``): the server refuses to start without one. Jobs and results are kept in ``--data``
(SQLite queue and files) across restarts. Before the web server starts, ``--data`` is locked for this server
(a second server on it is refused) and its queue is read whole (a damaged database is refused, with what to do):
one line and exit code 2 either way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .. import cluster
from ..errors import InputError
from ..web.config import ENV_VAR, ServerConfig, is_loopback
from ..web.jobs import JobStore, data_lock
from . import stylize as stylize_cli
from .progress import status
from .stylize import Parser

DEFAULT_DATA = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "impasto" / "serve"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="impasto serve", description="A local web page for style transfer, with a persistent job queue.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"job queue and files (default {DEFAULT_DATA})")
    p.add_argument("--workers", type=int, default=1, help="worker processes running jobs (default 1)")
    p.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    p.add_argument("--token", default=os.environ.get("IMPASTO_TOKEN"),
                   help="required from every request (Authorization: Bearer T, or open /?token=T once); needed for "
                   "any --host other than loopback (default: $IMPASTO_TOKEN)")  # fmt: skip
    p.add_argument("--max-upload-mb", type=float, default=30, help="largest request (all images together), MB")
    p.add_argument("--max-megapixels", type=float, default=50, help="largest image accepted, megapixels")
    p.add_argument("--max-jobs-per-client", type=int, default=10, help="queued or running jobs per client address")
    p.add_argument("--keep-hours", type=float, default=168, help="finished jobs are deleted after this (1 week)")
    p.add_argument("--max-disk-mb", type=float, default=2048, help="the oldest finished jobs are deleted beyond this")
    g = stylize_cli.add_cluster_args(p, "the workers (actors pulling jobs from the same queue; --data at the same "
                                     "path on every node)", io=False, verbose=False)  # fmt: skip
    g.description += "; --workers and --threads do not apply"
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The server's settings from the command line, checked (one-line errors)."""
    if not is_loopback(args.host) and not args.token:
        raise InputError(f"--host {args.host} is reachable from other machines: give --token T (or set IMPASTO_TOKEN)")
    if args.token is not None and len(args.token) < 8:
        raise InputError("--token must be at least 8 characters")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be from 0 to 65535, got {args.port}")
    if not 0 <= args.workers <= 64:
        raise InputError(f"--workers must be from 0 to 64, got {args.workers}")
    for name in ("max_upload_mb", "max_megapixels", "keep_hours", "max_disk_mb"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.cluster:
        cluster.parse_address(args.cluster)
        cluster.ray_module()  # not installed: one line saying how
        if args.cluster_actors is not None and args.cluster_actors < 1:
            raise InputError(f"--cluster-actors must be at least 1, got {args.cluster_actors}")
    if args.max_jobs_per_client < 1:
        raise InputError(f"--max-jobs-per-client must be at least 1, got {args.max_jobs_per_client}")
    return ServerConfig(
        data=args.data.expanduser(), host=args.host, port=args.port, workers=args.workers, token=args.token,
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_pixels=int(args.max_megapixels * 1_000_000),
        max_active_per_client=args.max_jobs_per_client, keep_hours=args.keep_hours, max_disk_mb=args.max_disk_mb,
        threads=args.threads, cluster=args.cluster, cluster_actors=args.cluster_actors,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Start the server; returns when it stops (Ctrl-C, SIGTERM)."""
    config = config_from_args(args)
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise InputError(
            f"impasto serve needs the web extra: pip install 'impasto[web]' ({err.name} is missing)"
        ) from None
    try:
        config.data.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create --data folder {config.data}: {err.strerror or err}") from None
    with data_lock(config.data):  # held until the server stops; the app holds it again while it runs
        store = JobStore(config.data)
        try:
            store.check()
        finally:
            store.close()
        return _serve(config, uvicorn)


def _serve(config: ServerConfig, uvicorn: Any) -> int:
    # uvicorn imports the app by name: the web app (and FastAPI) load only here, with the settings from the environment
    os.environ[ENV_VAR] = config.to_json()
    settings = uvicorn.Config("impasto.web.app:app_from_environment", factory=True, host=config.host,
                              port=config.port, log_level="warning", timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(settings)
    status("starting the web app (each worker loads its networks first)...")
    original = server.startup

    async def startup(sockets=None) -> None:  # noqa: ANN001 - print the URL once the port is bound
        await original(sockets)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                query = "/?token=..." if config.token else "/"
                print(f"impasto: serving on http://{shown}:{port}{query} (data in {config.data}; Ctrl-C stops)",
                      file=sys.stderr, flush=True)  # fmt: skip

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the SIGTERM / Ctrl-C it handled once it has stopped
        pass
    print("impasto: server stopped; unfinished jobs continue at the next start", file=sys.stderr)
    return 0
