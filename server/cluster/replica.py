"""A web replica of the cluster: ``python -m server run --database-url URL --shared-dir DIR``.

The same routes as the embedded server over other parts:
- the data in PostgreSQL (``Database.from_url``; the schema must have been migrated with
  ``python -m server migrate --database-url URL``: a replica never migrates on its own);
- the files (images, archives, thumbnails, uploads) under the shared folder;
- job rows created with their queue ticket, changes announced by NOTIFY, cancels aborting the
  queue's ticket, all in the rows' transactions (``ClusterTransactions``);
- a runner that runs nothing itself (``ReplicaRunner``: workers claim tickets), unless
  ``--workers N`` asks for an in-process worker as well;
- while it runs (``Replica.running``): the event listener (``EventListener``), the reconciler
  (R7 by leases), the archive expiry (R5), and the in-process worker if any.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

from server import auth
from server.cluster.access import ClusterAccessChanges, GoneNotices, tell_user
from server.cluster.listener import EventListener
from server.cluster.queue import deferring_app
from server.cluster.reconciler import reconcile_forever
from server.cluster.transactions import ClusterTransactions
from server.cluster.worker import conninfo_of, run_worker
from server.db import Database
from server.events import Hub
from server.fair_use import FairUse
from server.guard.private_files import make_private
from server.guard.signin import SignInGuard
from server.jobs import JobStore
from server.page_assets import PageAssets
from server.settings import Settings

LISTENER_READY_S = 15.0


class SchemaNotReady(SystemExit):
    """The database is not at the newest revision: ``migrate`` must run first."""


def open_cluster_database(database_url: str) -> Database:
    """The cluster's database, checked to be at the newest schema revision."""
    from server import migrate

    db = Database.from_url(database_url)
    current, head = migrate.current_revision(db), migrate.head_revision()
    if current != head:
        db.dispose()
        raise SchemaNotReady(
            f"the database is at schema revision {current or 'none'}, this version needs {head}: "
            "run `python -m server migrate --database-url URL` first")
    return db


def cluster_store(db: Database, shared_dir: Path, limits: FairUse = FairUse()) -> JobStore:
    """The job store of a replica or worker: archives under the shared folder, the queue and
    the events inside its transactions, the fair-use ``limits`` on starts (R10: the owner's
    row is locked in the start's transaction, so replicas cannot pass a limit together)."""
    return JobStore(db, Path(shared_dir) / "exports", lambda _user, _event: None, limits,
                    in_transaction=ClusterTransactions(deferring_app()))


def cluster_hooks(shared_dir: Path, enabled: bool):
    if not enabled:
        return None
    from server.cluster.shared_hooks import SharedTestHooks

    return SharedTestHooks(Path(shared_dir) / "test-hooks")


class ReplicaRunner:
    """What the routes ask of a runner, in a replica: a start needs nothing more (its ticket
    was made with the row); a cancel is the store's one transaction."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def submit(self, job_id: str, user_id: Optional[int] = None) -> None:
        return None

    def cancel(self, job_id: str):
        return self.store.cancel(job_id)

    def shutdown(self) -> None:
        return None


class Replica:
    """The replica's background parts, started and stopped with the app (``running``)."""

    def __init__(self, settings: Settings, store: JobStore, hub: Hub, build, hooks) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.build = build
        self.hooks = hooks
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.listener = EventListener(conninfo_of(settings.database_url), hub, self.name,
                                      GoneNotices(store.db, hub))

    @asynccontextmanager
    async def running(self):
        from server.maintenance import expiry_loop

        settings = self.settings
        stop = asyncio.Event()
        self.listener.start()
        try:
            await asyncio.wait_for(self.listener.connected.wait(), LISTENER_READY_S)
        except asyncio.TimeoutError:
            pass  # sockets are refused until it connects; clients poll meanwhile
        tasks = [
            asyncio.create_task(reconcile_forever(self.store, settings.lease_seconds, stop)),
            asyncio.create_task(expiry_loop(self.store, settings.archive_ttl_seconds, stop)),
        ]
        worker = None
        if settings.workers > 0:
            worker = asyncio.create_task(run_worker(
                self.store, self.build, self.hooks, settings.database_url, concurrency=settings.workers,
                lease_seconds=settings.lease_seconds, grace_seconds=settings.grace_seconds,
                install_signal_handlers=False, name=f"replica {self.name}"))
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                worker.cancel()  # procrastinate: finish within the grace, then hand back
                await asyncio.gather(worker, return_exceptions=True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.listener.stop()
            self.store.db.dispose()


def open_replica_services(settings: Settings):
    """``Services`` of a web replica (see the module)."""
    from server.services import Services, export_builder

    shared = make_private(Path(settings.data_dir))
    db = open_cluster_database(settings.database_url)
    files_root = shared / "files"
    files_root.mkdir(parents=True, exist_ok=True)
    hub = Hub()
    store = cluster_store(db, shared, FairUse(settings.max_active_exports_per_user, settings.archive_quota_bytes))
    hooks = cluster_hooks(shared, settings.test_hooks)
    build = export_builder(db, files_root, settings.max_image_pixels)
    replica = Replica(settings, store, hub, build, hooks)
    runner = ReplicaRunner(store)
    access = ClusterAccessChanges(db, store, shared, files_root, cancel=runner.cancel,
                                  publish=lambda user, event: tell_user(db, user, event))
    signin = SignInGuard(lambda name, password: auth.check_password(db, name, password))
    return Services(settings=settings, data_dir=shared, files_root=files_root, db=db, hub=hub, store=store,
                    runner=runner, hooks=hooks, page=PageAssets.load(), access=access, signin=signin,
                    boot_id=secrets.token_hex(16), cluster=replica)
