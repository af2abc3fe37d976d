"""The export hook ``use_advanced_export`` (C1-C8 of DESIGN.md) and what it is made of:

- ``hook``: ``use_advanced_export`` and its return value ``AdvancedExport``;
- ``dispatcher``: events in, transitions, actions out; ``inputs``: the WebSocket
  (``live_socket``), other tabs and visibility turned into events;
- ``activities``: the requests, timers and lock of each state, as a table of effects;
- ``answers``: the pure meaning of each server answer; ``timing``: the delays;
- ``controller``: ``ExportController``, the page's handle on the mounted hook.
"""
from app.export_hook.controller import VALUE_FIELDS, ExportController, create_export_controller
from app.export_hook.hook import AdvancedExport, use_advanced_export
from app.export_hook.timing import (
    AUTO_DOWNLOAD_DELAY_MS, CANCEL_REQUEST_DELAY_MS, POLL_CONNECTED_MS, POLL_INTERVAL_MS, retry_delay_ms,
)
