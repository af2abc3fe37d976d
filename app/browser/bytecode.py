"""Precompiled bytecode for the page's Python modules: built once per set of sources, used
at boot so the page does not compile ~3 MB of Python in the browser on every load.

Pyodide never writes ``.pyc`` files (``sys.dont_write_bytecode``) and its standard library
ships as sources, so without this every page load compiles pydantic, the app and the
standard library modules they use (about half of their import time).

Bundle format (``build_bundle`` -> ``load_bundle``): ``HEADER`` + the interpreter's
``importlib.util.MAGIC_NUMBER`` (4 bytes) + ``marshal`` of ``{"modules": {name: (origin,
size, code)}, "generated": {source text: code}}``. ``origin`` is the module's
``__spec__.origin``, ``size`` the byte length of its source file (None for modules inside
a zip, the standard library) and ``code`` the ``marshal`` of its code object, compiled
from that source exactly as the import system compiles it (``compile(source, origin,
"exec", dont_inherit=True)``). ``generated``: the methods ``dataclasses`` writes as text
and compiles with ``exec`` at class creation (``__init__``, ``__eq__``, ``__hash__`` ...
of each dataclass the modules define), compiled as ``exec`` would (``compile(text,
"<string>", "exec")``). Marshal data is only readable by the same Python version, hence
the magic number check.

Use (``install``): a ``BytecodeFinder`` first on ``sys.meta_path``. For a name in the
bundle it asks the other finders for the real spec and, when the origin (and size) match,
swaps in a loader that executes the precompiled code and forwards everything else
(``get_source``, ``get_data``, resources) to the real loader; otherwise the module is
imported from source as usual. ``dataclasses`` gets an ``exec`` that takes the compiled
code of a text it has seen (``GeneratedCode``) and compiles any other text. So a bundle
can never make the page run other code than its sources: at worst an entry that does not
match is not used.

Pure: no ``js`` import (the bundle is built in Pyodide under Node.js, see
``server.bytecode.BytecodeBundle``, and the logic is tested in CPython).
"""
from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import marshal
import os
import sys
from typing import Any, Iterable, Optional

HEADER = b"cellhub-bytecode-2\n"
"""First bytes of a bundle; the format version is part of it."""

Modules = dict[str, tuple[str, Optional[int], bytes]]


class BundleError(ValueError):
    """Not a bundle, or one made by another Python version."""


def compile_module(name: str) -> Optional[tuple[str, Optional[int], bytes]]:
    """``(origin, size, marshalled code)`` of the already imported module ``name``, or None
    when it has no Python source (built-in, extension, frozen, namespace package)."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None)
    origin = getattr(spec, "origin", None)
    if spec is None or loader is None or not origin or not origin.endswith(".py"):
        return None
    try:
        source = loader.get_source(name)
    except (ImportError, OSError):
        return None
    if source is None:
        return None
    size = os.stat(origin).st_size if os.path.isfile(origin) else None
    code = compile(source, origin, "exec", dont_inherit=True)
    return origin, size, marshal.dumps(code)


def build_bundle(entries: Iterable[str], skip: Iterable[str] = (),
                 before: Optional[Iterable[str]] = None) -> bytes:
    """Import every module named in ``entries`` and bundle each module that this imported
    (directly or not) and that has Python source. ``skip``: names to leave out (``"pkg"``
    skips ``pkg`` and ``pkg.*``); ``before``: the modules that count as already imported
    (default: those imported now). Raises what an import raises."""
    before = set(sys.modules if before is None else before)
    generated = GeneratedCode({}, record=True)
    previous = dataclasses.__dict__.get("exec")
    dataclasses.exec = generated  # type: ignore[attr-defined]
    try:
        for name in entries:
            importlib.import_module(name)
    finally:
        _restore_exec(previous)
    prefixes = tuple(skip)
    modules = {}
    for name in sorted(set(sys.modules) - before):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            continue
        entry = compile_module(name)
        if entry is not None:
            modules[name] = entry
    payload = {"modules": modules, "generated": generated.codes}
    return HEADER + importlib.util.MAGIC_NUMBER + marshal.dumps(payload)


def load_bundle(data: bytes) -> tuple[Modules, dict[str, bytes]]:
    """``(modules, generated)`` of a bundle (see the module doc). ``BundleError`` when
    ``data`` is not a bundle of this Python version."""
    magic = importlib.util.MAGIC_NUMBER
    if not data.startswith(HEADER):
        raise BundleError("not a bytecode bundle")
    if data[len(HEADER):len(HEADER) + len(magic)] != magic:
        raise BundleError("bytecode bundle of another Python version")
    payload = marshal.loads(data[len(HEADER) + len(magic):])
    if not isinstance(payload, dict) or not isinstance(payload.get("modules"), dict):
        raise BundleError("malformed bytecode bundle")
    return payload["modules"], dict(payload.get("generated") or {})


def _restore_exec(previous: Any) -> None:
    if previous is None:
        dataclasses.__dict__.pop("exec", None)
    else:
        dataclasses.exec = previous  # type: ignore[attr-defined]


class GeneratedCode:
    """``exec`` for ``dataclasses``: a source text found in ``codes`` (text -> marshalled
    code) runs its precompiled code; any other source is compiled as ``exec`` does (and
    kept, when ``record``). ``hits`` counts the texts found."""

    def __init__(self, codes: dict[str, bytes], record: bool = False) -> None:
        self.codes = codes
        self.record = record
        self.hits = 0

    def __call__(self, source: Any, globals: Any = None, locals: Any = None) -> None:
        if isinstance(source, str):
            code = self.codes.get(source)
            if code is not None:
                self.hits += 1
                return builtins.exec(marshal.loads(code), globals, locals)
            if self.record:
                compiled = compile(source, "<string>", "exec")
                self.codes[source] = marshal.dumps(compiled)
                return builtins.exec(compiled, globals, locals)
        return builtins.exec(source, globals, locals)


class _PrecompiledLoader:
    """The real loader of a module, except that its code comes from the bundle."""

    def __init__(self, inner: Any, code: bytes) -> None:
        self._inner = inner
        self._code = code

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create is not None else None

    def get_code(self, fullname: str) -> Any:
        return marshal.loads(self._code)

    def exec_module(self, module: Any) -> None:
        exec(self.get_code(module.__name__), module.__dict__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BytecodeFinder:
    """A ``sys.meta_path`` finder serving the bundle's modules (see the module doc).
    ``hits`` / ``misses``: names imported from the bundle / named in it but imported from
    source because the real module differs."""

    def __init__(self, modules: Modules, generated: Optional[GeneratedCode] = None) -> None:
        self.modules = modules
        self.generated = generated
        self.hits: list[str] = []
        self.misses: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        entry = self.modules.get(name)
        if entry is None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        origin, size, code = entry
        if spec is None or spec.loader is None or spec.origin != origin or not _same_size(origin, size):
            self.misses.append(name)
            return spec
        spec.loader = _PrecompiledLoader(spec.loader, code)
        self.hits.append(name)
        return spec


def _same_size(origin: str, size: Optional[int]) -> bool:
    if size is None:
        return True  # inside the standard library's zip: the bundle's key covers it
    try:
        return os.stat(origin).st_size == size
    except OSError:
        return False


def install(data: bytes) -> BytecodeFinder:
    """Put a ``BytecodeFinder`` for bundle ``data`` first on ``sys.meta_path``, give
    ``dataclasses`` its ``GeneratedCode`` and return the finder. ``BundleError`` (and
    nothing installed) for a bundle this Python cannot use."""
    modules, generated = load_bundle(data)
    finder = BytecodeFinder(modules, GeneratedCode(generated))
    sys.meta_path.insert(0, finder)
    dataclasses.exec = finder.generated  # type: ignore[attr-defined]
    return finder


def uninstall(finder: BytecodeFinder) -> None:
    """Undo ``install`` (modules imported meanwhile stay as they are)."""
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    if dataclasses.__dict__.get("exec") is finder.generated:
        dataclasses.__dict__.pop("exec", None)
