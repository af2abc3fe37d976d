"""Each web replica's ear on the database: ``LISTEN cellhub_events`` on a connection of its
own, every notification handed to the replica's WebSocket hub (R6 across replicas).

While the listener is down the replica cannot know what happens to anyone's jobs, so its
sockets would go quiet while looking alive: a replica that loses its listening connection
closes every WebSocket at once (code ``DROPPED_CODE``), refuses new ones until it listens
again (``hub.accepting``), and reconnects (after ``RETRY_S``). Clients meanwhile poll (C7)
and, once they reconnect, get the snapshot of their active jobs; nothing is lost but a few
progress steps.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

from server.cluster import notify

RETRY_S = 0.5
DROPPED_CODE = 1012  # "service restart": the client reconnects
APPLICATION_NAME = "cellhub-events"
"""The listening connection's ``application_name`` in ``pg_stat_activity``."""

log = logging.getLogger("cellhub.cluster")


class EventListener:
    """Runs ``listen_forever`` as a task of the replica's event loop."""

    def __init__(self, conninfo: str, hub, replica: str, notices=None) -> None:
        self.conninfo = conninfo
        self.hub = hub
        self.replica = replica
        self.notices = notices  # ``access.GoneNotices``: notices to an audience
        self.connected = asyncio.Event()
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self.hub.accepting = False
        self._task = asyncio.create_task(self.listen_forever(), name="cellhub-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def listen_forever(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, application_name=f"{APPLICATION_NAME} {self.replica}") as conn:
                    await conn.execute(f"LISTEN {notify.CHANNEL}")
                    self.hub.accepting = True
                    self.connected.set()
                    async for message in conn.notifies():
                        await self._deliver(message.payload)
                # notifies() ends only when the connection does
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any loss of the connection: drop, then retry
                log.warning("event listener lost its connection (%s); closing every WebSocket", exc)
            self.connected.clear()
            self.hub.accepting = False
            await self.hub.drop_all(code=DROPPED_CODE)
            await asyncio.sleep(RETRY_S)

    async def _deliver(self, payload: str) -> None:
        try:
            audience = self.notices.parse(payload) if self.notices is not None else None
            if audience is not None:  # in order: the next notification waits for it
                await asyncio.get_running_loop().run_in_executor(None, self.notices.deliver, *audience)
                return
            user_id, event = notify.decode(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed event notification: %.200r", payload)
            return
        self.hub.publish(user_id, event)
