"""What the service does on its own: recover jobs at start (R7), expire archives (R5)."""
from __future__ import annotations

import asyncio

from server.jobs import JobStore, Runner


def recover_jobs(store: JobStore, runner: Runner) -> None:
    """R7: jobs left queued/running by a previous process are run again (first time) or
    marked failed with a clear message (if they already failed to finish once)."""
    for row in store.unfinished():
        store.remove_files(row["id"])
        if row["attempts"] >= 2:
            store.fail(row["id"], "Export failed: the server stopped twice while it ran. Please start it again.")
            continue
        store.requeue_after_restart(row["id"])
        runner.submit(row["id"], row["user_id"])


async def expiry_loop(store: JobStore, ttl_seconds: float, stop: asyncio.Event) -> None:
    """Expire old archives now and then (R5)."""
    period = max(0.5, min(60.0, ttl_seconds / 4))
    while not stop.is_set():
        await asyncio.get_running_loop().run_in_executor(None, store.expire_old, ttl_seconds)
        try:
            await asyncio.wait_for(stop.wait(), timeout=period)
        except asyncio.TimeoutError:
            pass
