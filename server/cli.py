"""Command line of the service.

- ``run [--host 127.0.0.1] [--port 8000] [--data-dir DIR]``: start the service; prints the URL
  with a one-time sign-in token for the local default user (as Jupyter does).
- ``users add NAME`` (password from ``--password`` or asked for), ``users list``.
- ``projects list|share|unshare|delete``: projects and their members (``server.projects_cli``).
- ``import ...``: bring your own images and segmentations (see ``python -m server import -h``).
- ``migrate [--data-dir DIR | --database-url URL]``: create the database or bring its schema
  up to date (Alembic; idempotent). ``run`` does this itself for its data folder.
- ``bytecode``: build the page's precompiled bytecode bundle now (``server.bytecode``; the
  set-up runs it; without it the first page starts a build in the background).
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


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value!r}")
    return number


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
    from server.web import Settings, create_app

    settings = Settings(
        data_dir=_data_dir(args.data_dir),
        archive_ttl_seconds=args.archive_ttl_hours * 3600,
        test_hooks=os.environ.get("CELLHUB_TEST_HOOKS") == "1",
        max_active_exports_per_user=args.max_active_exports_per_user,
        archive_quota_bytes=int(args.archive_quota_mb * 1024 * 1024),
        round_robin=args.scheduling == "round-robin",
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
    user_id = accounts.ensure_user(db, auth.DEFAULT_USER)
    token = auth.new_login_token(db, user_id)
    url = f"http://{url_host(args.host)}:{args.port}/login?token={token}"
    print(f"Cell segmentation hub export: data in {settings.data_dir}", flush=True)
    if settings.test_hooks:
        print("WARNING: test hooks are ON (CELLHUB_TEST_HOOKS=1); never do this outside tests", flush=True)
    print(f"Open this URL to sign in (one-time link):\n    {url}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws_ping_interval=20)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from server import accounts, auth
    from server.services import open_data_dir

    db = open_data_dir(_data_dir(args.data_dir))
    if args.users_cmd == "add":
        password = args.password
        if password is None:
            password = getpass.getpass(f"Password for {args.name}: ")
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
        data_dir = _data_dir(args.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
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


def cmd_bytecode(args: argparse.Namespace) -> int:
    from server.page_assets import page_bytecode_bundle

    bundle = page_bytecode_bundle()
    if bundle.build():
        print(f"bytecode bundle: {bundle.path}")
        return 0
    print("no bytecode bundle (turned off, no Node.js, or the build failed): the page compiles its modules itself")
    return 0 if not bundle.enabled else 1


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
    run.set_defaults(func=cmd_run)

    sub.add_parser("bytecode", help="build the page's precompiled bytecode bundle now").set_defaults(
        func=cmd_bytecode)

    mig = sub.add_parser("migrate", help="create the database or bring its schema up to date (idempotent)")
    where = mig.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="the data folder's SQLite database")
    where.add_argument("--database-url", help="a SQLAlchemy URL instead, e.g. postgresql+psycopg://user@host/db")
    mig.set_defaults(func=cmd_migrate)

    users = sub.add_parser("users", help="manage users")
    users.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    users_sub = users.add_subparsers(dest="users_cmd", required=True)
    add = users_sub.add_parser("add", help="add a user with a password")
    add.add_argument("name")
    add.add_argument("--password", help="password (asked for when omitted)")
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
