"""The parts of one running service, made once by ``open_services`` and shared by every route
(``request.app.state.services``): database, job store, workers, event hub, page assets,
the sign-in guard and the boot id of this start."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from server import auth, project_store
from server.db import Database
from server.events import Hub
from server.guard.private_files import make_private
from server.guard.signin import SignInGuard
from server.fair_use import FairUse
from server.jobs import JobStore, Runner, TestHooks
from server.page_assets import PageAssets
from server.settings import Settings
from server.sharing import AccessChanges

DATABASE_FILE = "cellhub.sqlite3"


@dataclass
class Services:
    settings: Settings
    data_dir: Path
    files_root: Path
    db: Database
    hub: Hub
    store: JobStore
    runner: Runner
    hooks: Optional[TestHooks]
    page: PageAssets
    signin: SignInGuard
    """Password sign-in: throttled, bounded in parallel (``server.guard.signin``)."""
    boot_id: str
    """This start of the server: its one-time sign-in links work only here (``server.auth``)."""
    access: AccessChanges
    cluster: Any = None
    """The cluster replica's own parts (``server.cluster.replica.Replica``); None when embedded."""


def open_data_dir(data_dir: Path) -> Database:
    """The data directory's SQLite database (directory and database created, schema
    migrated to the newest revision, if needed): the embedded deployment. The directory is
    made private first (0700, its files 0600, umask 077: ``server.guard.private_files``)."""
    return Database(make_private(Path(data_dir)) / DATABASE_FILE)


def export_builder(db: Database, files_root: Path, max_image_pixels: Optional[int] = None) -> Callable:
    """``build(job, dest, checkpoint) -> warnings``: write the archive of ``job`` to ``dest``
    from the project's rows in ``db`` and its images under ``files_root`` (``max_image_pixels``:
    the pixel budget of ``write_archive``; None: its default)."""

    def build(job, dest: Path, checkpoint) -> list[str]:
        from server.archive.writer import write_archive

        project = project_store.load_project(db, job.project_id, files_root, job.options.image_ids,
                                             after_image=lambda: checkpoint("starting", 0.0, "Reading the project"))
        budget = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
        result = write_archive(project, project.images, job.options, dest, checkpoint, **budget)
        return list(getattr(result, "warnings", []) or [])

    return build


def open_services(settings: Settings) -> Services:
    """Everything a service over ``settings.data_dir`` needs; workers are idle until jobs come.
    With ``settings.database_url``: a web replica of the cluster (``server.cluster.replica``)."""
    if settings.database_url:
        from server.cluster.replica import open_replica_services

        return open_replica_services(settings)
    data_dir = Path(settings.data_dir)
    db = open_data_dir(data_dir)
    files_root = data_dir / "files"
    files_root.mkdir(exist_ok=True)
    hub = Hub()
    limits = FairUse(settings.max_active_exports_per_user, settings.archive_quota_bytes)
    store = JobStore(db, data_dir / "exports", hub.publish, limits)
    hooks = TestHooks() if settings.test_hooks else None
    runner = Runner(store, export_builder(db, files_root, settings.max_image_pixels), hooks, workers=settings.workers,
                    round_robin=settings.round_robin)
    access = AccessChanges(db, store, data_dir, files_root, cancel=runner.cancel, publish=hub.publish,
                           connected=hub.connected_users)
    signin = SignInGuard(lambda name, password: auth.check_password(db, name, password))
    return Services(settings=settings, data_dir=data_dir, files_root=files_root, db=db, hub=hub, store=store,
                    runner=runner, hooks=hooks, page=PageAssets.load(), access=access, signin=signin,
                    boot_id=secrets.token_hex(16))
