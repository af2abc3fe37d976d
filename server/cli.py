"""Command line of the service.

- ``run [--host 127.0.0.1] [--port 8000] [--data-dir DIR]``: start the service; prints the URL
  with a one-time sign-in token for the local default user (as Jupyter does).
- ``users add NAME`` (the password asked for on the terminal, or the first line of standard
  input; never an argument, which ``ps`` would show), ``users list``.
- ``projects list|share|unshare|delete``: projects and their members (``server.projects_cli``).
- ``import ...``: bring your own images and segmentations (see ``python -m server import -h``).
- ``migrate [--data-dir DIR | --database-url URL]``: create the database or bring its schema
  up to date (Alembic; idempotent). ``run`` does this itself for its data folder.
- ``bytecode``: build the page's precompiled bytecode bundle now (``server.bytecode``; the
  set-up runs it; without it the first page starts a build in the background).
- ``snapshot``: build the page's memory snapshot now (``server.snapshot``; likewise).

Several machines (issue 20; README "Running on several machines"):
- ``migrate --database-url URL``: create or upgrade the PostgreSQL schema and the queue's
  tables (idempotent);
- ``run --database-url URL --shared-dir DIR [--workers 0]``: a web replica (``--workers N``:
  also run exports, N at a time, in this process; 0: none);
- ``worker --database-url URL --shared-dir DIR [--concurrency 1]``: a worker process; SIGTERM
  lets its exports finish (``--grace-seconds``) or hands them back; a worker killed outright
  is noticed after ``--lease-seconds`` and its exports are put back once.
"""
from __future__ import annotations

import argparse
import errno
import getpass
import os
import socket
import sys
from pathlib import Path
from typing import Optional

DEFAULT_DATA_DIR = ".data"
UVICORN_OPTIONS = {
    "ws_ping_interval": 20,
    "ws_max_size": 64 * 1024,  # clients send the WebSocket nothing the server reads
    "proxy_headers": False,  # X-Forwarded-* are trusted by the app itself, only with --behind-proxy
    "server_header": False,
}
"""What ``uvicorn.run`` gets besides the app, host and port (benchmarks and tests use the same)."""


def _data_dir(value: str) -> Path:
    return Path(value).expanduser().resolve()


def _positive(unit: str):
    """An argparse type: a finite number above 0 of ``unit``, else an error naming the unit."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {value!r}") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number of {unit}, got {value!r}")
        return number

    return parse


_hours = _positive("hours")
_megabytes = _positive("megabytes")
_seconds = _positive("seconds")


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value!r}")
    return number


def _default_pixels() -> int:
    from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS

    return DEFAULT_MAX_IMAGE_PIXELS


def _pixel_count(value: str) -> int:
    from server.imports.cli import pixel_count

    return pixel_count(value)


def auth_link_minutes() -> float:
    from server.auth import LOGIN_LINK_MINUTES

    return LOGIN_LINK_MINUTES


def _minutes(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {value!r}") from None
    if not 0 < minutes <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most a week (10080), got {value!r}")
    return minutes


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on ``host``: a wildcard
    (``0.0.0.0``, ``::``, empty) becomes the loopback address of its family; an IPv6
    address is bracketed (RFC 3986)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _port_in_use(host: str, port: int) -> Optional[str]:
    """``"host:port: reason"`` if an address of ``host`` cannot be bound at ``port`` because it
    is in use, else None (other errors are left to the server's own start). Binds with
    ``SO_REUSEADDR`` as the server does, so a port in TIME_WAIT is not "in use"."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{address[0]}:{address[1]}: {exc.strerror}"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from server import accounts, auth
    from server.guard.hosts import default_allowed_hosts
    from server.web import Settings, create_app

    if args.database_url and not args.shared_dir:
        print("--database-url needs --shared-dir (the folder every replica and worker shares)", file=sys.stderr)
        return 2
    if not args.database_url and args.workers == 0:
        print("--workers 0 is for a replica of a cluster (--database-url): this server would run no export",
              file=sys.stderr)
        return 2
    settings = Settings(
        data_dir=_data_dir(args.shared_dir or args.data_dir),
        archive_ttl_seconds=args.archive_ttl_hours * 3600,
        test_hooks=os.environ.get("CELLHUB_TEST_HOOKS") == "1",
        allowed_hosts=args.allowed_hosts or default_allowed_hosts(args.host),
        secure_cookies=args.secure_cookies,
        behind_proxy=args.behind_proxy,
        login_link_minutes=args.login_link_minutes,
        max_image_pixels=args.max_image_pixels,
        max_active_exports_per_user=args.max_active_exports_per_user,
        archive_quota_bytes=int(args.archive_quota_mb * 1024 * 1024),
        round_robin=args.scheduling == "round-robin",
        workers=args.workers,
        database_url=args.database_url,
        lease_seconds=args.lease_seconds,
        grace_seconds=args.grace_seconds,
    )
    # The port first: a sign-in link (or a data folder) made for a port another program holds
    # would lead to that program.
    taken = _port_in_use(args.host, args.port)
    if taken:
        print(f"Cannot listen on {taken}. Another program (or another copy of this server) uses it; "
              "choose another port with --port.", file=sys.stderr, flush=True)
        return 1
    app = create_app(settings)
    db = app.state.db
    with db.exclusive("default-user"):  # replicas starting at once add it once
        user_id = accounts.ensure_user(db, auth.DEFAULT_USER)
    token = auth.new_login_token(db, user_id, app.state.services.boot_id)
    url = f"http://{url_host(args.host)}:{args.port}/login?token={token}"
    if settings.database_url:
        where = db.engine.url.render_as_string(hide_password=True)
        print(f"Cell segmentation hub export: replica of {where}, files in {settings.data_dir}", flush=True)
    else:
        print(f"Cell segmentation hub export: data in {settings.data_dir}", flush=True)
    if settings.test_hooks:
        print("WARNING: test hooks are ON (CELLHUB_TEST_HOOKS=1); never do this outside tests", flush=True)
    print(f"Open this URL to sign in (one-time link):\n    {url}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **UVICORN_OPTIONS)
    return 0


def read_new_password(name: str) -> Optional[str]:
    """A new password from the terminal (asked twice, not echoed) or, when standard input
    is not a terminal, its first line. Never from the command line, where ``ps`` shows it.
    None when nothing usable was given (or the two typed ones differ)."""
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(f"Password for {name}: ")
        if first != getpass.getpass("Once more: "):
            print("the two passwords differ", file=sys.stderr)
            return None
        return first or None
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n") or None


def cmd_users(args: argparse.Namespace) -> int:
    from server import accounts, auth
    from server.services import open_data_dir

    if args.database_url:
        from server.cluster.replica import open_cluster_database

        db = open_cluster_database(args.database_url)
    else:
        db = open_data_dir(_data_dir(args.data_dir))  # made private: 0700, files 0600
    if args.users_cmd == "add":
        password = read_new_password(args.name)
        if password is None:
            print("error: no password given (type it at the prompt, or pipe it on standard input)",
                  file=sys.stderr)
            return 2
        try:
            auth.add_user(db, args.name, password)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"user {args.name} added")
        return 0
    for name, created_at in accounts.list_users(db):
        print(f"{name}\t{created_at}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from server import migrate
    from server.db import Database
    from server.services import DATABASE_FILE

    if args.database_url:
        db = Database.from_url(args.database_url)
        where = db.engine.url.render_as_string(hide_password=True)
    else:
        from server.guard.private_files import make_private

        data_dir = make_private(_data_dir(args.data_dir))
        db = Database(data_dir / DATABASE_FILE, migrate=False)
        where = str(data_dir)
    before = migrate.current_revision(db)
    migrate.upgrade(db)
    after = migrate.current_revision(db)
    db.dispose()
    if before == after:
        print(f"{where}: schema up to date (revision {after})")
    else:
        print(f"{where}: schema upgraded from revision {before or 'none'} to {after}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from server.cluster.replica import cluster_hooks, cluster_store, open_cluster_database
    from server.cluster.worker import run_worker
    from server.guard.private_files import make_private
    from server.services import export_builder

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    shared = make_private(_data_dir(args.shared_dir))  # as a replica's: 0700, files 0600
    db = open_cluster_database(args.database_url)
    (shared / "files").mkdir(parents=True, exist_ok=True)
    store = cluster_store(db, shared)
    hooks = cluster_hooks(shared, os.environ.get("CELLHUB_TEST_HOOKS") == "1")
    where = db.engine.url.render_as_string(hide_password=True)
    print(f"Cell segmentation hub export worker: {args.concurrency} at a time, queue in {where}, "
          f"files in {shared}", flush=True)
    try:
        asyncio.run(run_worker(store, export_builder(db, shared / "files", args.max_image_pixels), hooks, args.database_url,
                               concurrency=args.concurrency, lease_seconds=args.lease_seconds,
                               grace_seconds=args.grace_seconds))
    finally:
        db.dispose()
    print("worker stopped", flush=True)
    return 0


def _add_cluster_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--database-url", required=required,
                        help="PostgreSQL (SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db): a cluster")
    parser.add_argument("--shared-dir", required=required,
                        help="with --database-url: the folder every replica and worker shares (files, archives)")
    parser.add_argument("--lease-seconds", type=_seconds, default=30.0,
                        help="a worker silent this long is presumed dead and its exports are put back")
    parser.add_argument("--grace-seconds", type=_seconds, default=30.0,
                        help="on SIGTERM, how long a worker lets its exports finish before handing them back")


def _build(build, made: str, without: str) -> int:
    """Build a page asset (``BytecodeBundle`` or ``SnapshotBundle``); print where it is, or that
    the page goes ``without`` it. Exit status 1 only when it was wanted and failed."""
    if build.build():
        print(f"{made}: {build.path}")
        return 0
    print(f"no {made} (turned off, no Node.js, or the build failed): {without}")
    return 0 if not build.enabled else 1


def cmd_bytecode(args: argparse.Namespace) -> int:
    from server.page_assets import page_bytecode_bundle

    return _build(page_bytecode_bundle(), "bytecode bundle", "the page compiles its modules itself")


def cmd_snapshot(args: argparse.Namespace) -> int:
    from server.page_assets import page_snapshot

    return _build(page_snapshot(), "memory snapshot", "the page boots without one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="Cell segmentation hub: export service")
    sub = parser.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="start the service")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="SQLite database and files (created if missing)")
    run.add_argument("--archive-ttl-hours", type=_hours, default=24.0, help="how long a finished archive is kept")
    run.add_argument("--max-active-exports-per-user", type=_count, default=3, metavar="N",
                     help="queued + running exports per user over all projects; one more is refused (429)")
    run.add_argument("--archive-quota-mb", type=_megabytes, default=2048.0, metavar="MB",
                     help="kept export archives per user; a start beyond it is refused (507)")
    run.add_argument("--scheduling", choices=("round-robin", "fifo"), default="round-robin",
                     help="which queued export a free worker runs: the oldest of the user who waited "
                          "longest (round-robin), or the oldest of all (fifo)")
    run.add_argument("--log-level", default="warning")
    run.add_argument("--workers", type=int, default=2, choices=range(0, 65), metavar="N",
                     help="exports run at a time by this process (0: none, with --database-url)")
    _add_cluster_options(run, required=False)
    run.add_argument("--max-image-pixels", type=_pixel_count, default=_default_pixels(),
                     help="pixel budget of one image (all TIFF pages together), checked from its header "
                          "before decoding: imports refuse more, thumbnails and overlays skip it "
                          "(default 100,000,000)")
    run.add_argument("--login-link-minutes", type=_minutes, default=auth_link_minutes(),
                     help="how long the printed one-time sign-in link works (default 15); "
                          "every link dies at the next start anyway")
    run.add_argument("--allowed-hosts", type=_names, metavar="NAMES",
                     help="comma-separated host names the server answers to (*.domain for subdomains); "
                          "default: --host (unless a wildcard), localhost, 127.0.0.1, ::1")
    run.add_argument("--secure-cookies", action="store_true",
                     help="mark the session cookie Secure (the page is reached over https)")
    run.add_argument("--behind-proxy", type=_names, nargs="?", const=["127.0.0.1"], metavar="ADDRESSES",
                     help="trust X-Forwarded-Proto/-For from these proxy addresses only (default 127.0.0.1); "
                          "the cookie is Secure when the proxy says https")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="run exports of a cluster (PostgreSQL and a shared folder)")
    _add_cluster_options(worker, required=True)
    worker.add_argument("--concurrency", type=int, default=1, choices=range(1, 65), metavar="N",
                        help="exports run at a time (default 1)")
    worker.add_argument("--max-image-pixels", type=_pixel_count, default=_default_pixels(),
                        help="pixel budget of one image: an overlay of a larger image is left out of the "
                             "archive with a warning (default 100,000,000; as the replicas' option)")
    worker.add_argument("--log-level", default="warning")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("bytecode", help="build the page's precompiled bytecode bundle now").set_defaults(
        func=cmd_bytecode)

    mig = sub.add_parser("migrate", help="create the database or bring its schema up to date (idempotent)")
    where = mig.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="the data folder's SQLite database")
    where.add_argument("--database-url", help="a SQLAlchemy URL instead, e.g. postgresql+psycopg://user@host/db")
    mig.set_defaults(func=cmd_migrate)

    sub.add_parser("snapshot", help="build the page's memory snapshot now").set_defaults(func=cmd_snapshot)

    users = sub.add_parser("users", help="manage users")
    users.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    users.add_argument("--database-url", help="a cluster's PostgreSQL instead of a data folder")
    users_sub = users.add_subparsers(dest="users_cmd", required=True)
    add = users_sub.add_parser("add", help="add a user; the password is asked for on the terminal "
                                             "or read from the first line of standard input")
    add.add_argument("name")
    users_sub.add_parser("list", help="list users")
    users.set_defaults(func=cmd_users)

    from server.projects_cli import add_projects_parser

    add_projects_parser(sub, DEFAULT_DATA_DIR)
    try:
        from server.imports.cli import add_import_parser
    except ImportError:
        add_import_parser = None
    if add_import_parser is not None:
        add_import_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
