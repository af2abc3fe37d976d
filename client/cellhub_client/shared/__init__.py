"""The page's own modules, shared with the server: ``models`` (export options and their
validation, the job JSON, the events), ``errors`` (the one shape of an error answer) and
``routes`` (the API's paths).

They are ``app/models.py``, ``app/errors.py`` and ``app/routes.py`` of the hub's repository,
put here byte for byte when the wheel is built (``client/pyproject.toml``), so the client
validates options exactly as the page and the server do, without a copy in the repository
and without depending on the server. In a checkout (no built wheel) they are found in the
repository's ``app/`` folder instead.
"""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "models.py").is_file():
    _CHECKOUT = _HERE.parents[2] / "app"
    if (_CHECKOUT / "models.py").is_file():
        __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's own __path__
