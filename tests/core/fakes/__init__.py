"""In-memory fakes for every port of ``app.ports`` and a ``World`` of N tabs, for the
core's tests and the model checker: ``scheduler`` (steps and the clock), ``server`` (the
export API), ``ports`` (the browser's ports), ``world`` (tabs, user clicks, driving) and
``safety`` (the invariants over a world's history). Everything is deterministic."""
from .ports import DownloadRecord, FakeClockPort, FakeLog
from .scheduler import START_MS, Scheduler, Step
from .server import HANG, LOST_RESPONSE, NETWORK_ERROR, FakeServer
from .world import Tab, World
