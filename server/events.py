"""Fan-out of R6 events to every WebSocket connection of a job's owner.

Worker threads call ``publish`` (thread-safe); each connection has its own queue and
sender task, so one slow client never delays another and events reach each client in the
order they were published.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from fastapi import WebSocket

HEARTBEAT_SECONDS = 15.0


class Connection:
    """One WebSocket with its outgoing queue; ``token_id``: the API token it was opened with
    (None: a browser session)."""

    def __init__(self, websocket: WebSocket, user_id: int, token_id: Optional[int] = None) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.token_id = token_id
        self.queue: asyncio.Queue[Optional[dict]] = asyncio.Queue()

    async def sender(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            await self.websocket.send_json(item)


class Hub:
    """Registry of connections by user; ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.connections: dict[int, set[Connection]] = {}
        self.accepting = True
        """False while events cannot reach this hub (the cluster's listener is down): new
        WebSockets are refused, so clients poll instead of trusting a silent socket."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def add(self, conn: Connection) -> None:
        self.connections.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        conns = self.connections.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                self.connections.pop(conn.user_id, None)

    def connected_users(self) -> list[int]:
        """The users with at least one open connection now."""
        return list(self.connections)

    def publish(self, user_id: int, event: dict[str, Any]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(user_id, event)
        else:
            loop.call_soon_threadsafe(self._deliver, user_id, event)

    def _deliver(self, user_id: int, event: dict[str, Any]) -> None:
        for conn in list(self.connections.get(user_id, ())):
            conn.queue.put_nowait(event)

    async def close_token(self, token_id: int, reason: str) -> int:
        """Close every connection opened with API token ``token_id`` (code 4401, ``reason``):
        a revoked token stops acting at once, on open sockets too. The count closed."""
        closing = [conn for conns in list(self.connections.values()) for conn in list(conns)
                   if conn.token_id == token_id]
        for conn in closing:
            await close_quietly(conn.websocket, 4401, reason)
        return len(closing)

    async def drop_all(self, code: int = 4000) -> int:
        """Close every connection (test hook: simulates a lost socket; the cluster's listener
        when it loses the database)."""
        count = 0
        for conns in list(self.connections.values()):
            for conn in list(conns):
                count += 1
                try:
                    await conn.websocket.close(code=code)
                except Exception:  # noqa: BLE001 - already closed is fine
                    pass
        return count


async def close_quietly(websocket: WebSocket, code: int, reason: str = "") -> None:
    """Close ``websocket`` with ``code``; one that is already closed is left as it is."""
    try:
        await websocket.close(code=code, reason=reason)
    except Exception:  # noqa: BLE001 - already closed or never accepted
        pass
