"""``LiveSocket``: the page's one WebSocket (R6), kept open.

After a close it connects again after ``reconnect_delay_ms`` (500 ms doubling up to 30 s,
back to 500 ms once a connection opens), and nothing of a closed connection reaches the
hook any more: each connection has its generation, and callbacks of an older one are
dropped.
"""
from __future__ import annotations

from typing import Callable

from app.export_hook.timing import reconnect_delay_ms
from app.ports import Clock, Socket, Stop, noop


class LiveSocket:
    """``open()`` connects; ``on_open``/``on_close`` run per connection, ``on_message`` per
    message of the current one; ``close()`` ends it for good (no reconnect)."""

    def __init__(self, socket: Socket, clock: Clock, on_open: Callable[[], None],
                 on_message: Callable[[dict], None], on_close: Callable[[], None]) -> None:
        self._socket = socket
        self._clock = clock
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close
        self._close: Stop = noop
        self._retry: Stop = noop
        self.generation = 0
        self.failures = 0
        """Closes since the last connection that opened."""

    def open(self) -> None:
        self.connect()

    def connect(self) -> None:
        self._retry = noop
        self.generation += 1
        generation = self.generation

        def opened() -> None:
            if generation == self.generation:
                self.failures = 0
                self._on_open()

        def closed() -> None:
            if generation != self.generation:
                return
            self.generation += 1  # silence this connection for good
            self.failures += 1
            self._on_close()
            self._retry = self._clock.set_timeout(self.connect, reconnect_delay_ms(self.failures))

        def message(data: dict) -> None:
            if generation == self.generation:
                self._on_message(data)

        self._close = self._socket.connect(opened, message, closed)

    def close(self) -> None:
        self.generation += 1
        self._retry()
        self._close()
