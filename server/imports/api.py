"""``POST /api/projects/import``: a new project from uploaded images and segmentations.

The request is ``multipart/form-data`` (RFC 7578) with the text fields ``format`` (``coco``,
``labels``, ``patches`` or ``dsb``), ``name`` (optional), ``pixel_size_um`` (optional,
0.001..1000 micrometres per pixel) and ``label_suffix`` (optional, labels/patches: a mask's
stem is its image's stem plus this), and the files:

- ``coco``: ``annotations`` (one COCO JSON) + ``images`` (the files its ``file_name`` s name);
- ``labels`` (integer label images) / ``patches`` (colour-coded masks, BBBC039):
  ``images`` + ``masks``, paired by file stem as :func:`server.imports.labels.pair_by_stem`
  pairs them; every uploaded file must find its partner;
- ``dsb``: ``archive``, one zip in the 2018 Data Science Bowl layout
  (``<id>/images/<id>.png``, ``<id>/masks/*.png``, optionally under one top folder).

The body is parsed as it arrives (python-multipart's streaming parser) and every file goes
straight into a private folder ``<data dir>/uploads/import-<random>/``, so the size limit
(``settings.max_upload_bytes``, for each file and for all files together; also for every
unpacked zip entry and the unpacked total) is enforced before more than that is stored. Then
the loaders validate everything, :func:`server.projects.persist_project` stores the project
all or nothing, and the folder is removed whatever happened.

Answers: 201 ``{"project_id", "name", "images", "objects", "warnings"}``; 413
``{"detail": [{"field", "reason"}]}`` for a too-large upload; 422 ``{"detail": [{"field",
"reason"}, ...]}`` listing every problem found, naming the uploaded files (``images/x.tif``,
``masks/x.png``, the JSON's name, or the path inside the zip), never a server path; 401/403
from :func:`server.auth.require_user`. After any error, nothing is stored.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from server import auth
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS
from server.imports.plan import ImportPlan, ImportValidationError

FORMATS = ("coco", "labels", "patches", "dsb")
FILE_FIELDS = {"coco": ("annotations", "images"), "labels": ("images", "masks"),
               "patches": ("images", "masks"), "dsb": ("archive",)}
TEXT_FIELDS = ("format", "name", "pixel_size_um", "label_suffix")
MAX_FILES = 10_000           # per request; a project of more images is better imported with the CLI
MAX_TEXT_BYTES = 4096        # per text field
MAX_ZIP_ENTRIES = 50_000
MAX_NAME_CHARS = 200
FORM_OVERHEAD = 1024 * 1024  # what a body may carry beyond the file limit (part headers, text fields)
DRAIN_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class Refused(Exception):
    """The upload is refused with HTTP ``status`` and ``problems`` (``{"field", "reason"}``)."""

    def __init__(self, status: int, problems: list[dict]):
        super().__init__(problems)
        self.status = status
        self.problems = problems


class TooLarge(Refused):
    """413: a file, the unpacked zip or the whole upload is over the limit."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(413, [{"field": field_name, "reason": reason}])


def _problem(field_name: str, reason: str) -> dict:
    return {"field": field_name, "reason": reason}


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MiB ({n} bytes)"


def upload_name(raw: str) -> tuple[Optional[str], str]:
    """``(name, "")`` for an acceptable uploaded file name -- its last path component, since
    browsers send folder uploads as ``folder/x.png`` -- or ``(None, reason)``."""
    base = re.split(r"[/\\]", raw)[-1].strip()
    if not base or base in (".", ".."):
        return None, "not a usable file name"
    if any(ord(c) < 32 or ord(c) == 127 for c in base):
        return None, "the file name holds control characters"
    if base.startswith("."):
        return None, "hidden files (name starting with '.') are not imported"
    if len(base.encode("utf-8", "surrogatepass")) > 255:
        return None, "the file name is longer than 255 bytes"
    return base, ""


@dataclass
class Upload:
    """One received file: ``name`` as uploaded (its last path component), ``path`` where it was saved."""

    field: str
    name: str
    path: Path
    size: int = 0
    handle: Optional[BinaryIO] = None


@dataclass
class Received:
    """What the form carried: text fields, files by field, and problems already found."""

    text: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)


class MultipartReceiver:
    """python-multipart callbacks that save file parts under ``folder/<field>/<name>``.

    Disk work is queued in ``ops`` and run by the caller in a threadpool after each chunk,
    so the event loop never blocks on it. Raises :class:`TooLarge` from ``parser.write``
    once a file passes ``max_file_bytes`` or all files pass ``max_total_bytes``."""

    def __init__(self, folder: Path, max_file_bytes: int, max_total_bytes: int):
        self.folder = folder
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.got = Received()
        self.ops: list[Callable[[], None]] = []
        self.finished = False
        self.total = 0
        self._count = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._kind = "skip"
        self._field = ""
        self._text = bytearray()
        self._upload: Optional[Upload] = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished, "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._disposition, self._kind, self._field, self._upload = b"", "skip", "", None
        self._text = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._field = field_name = options.get(b"name", b"").decode("utf-8", "replace")
        problems = self.got.problems
        if b"filename" not in options:
            if field_name not in TEXT_FIELDS:
                problems.append(_problem(field_name or "body", "unknown form field"))
            elif field_name in self.got.text:
                problems.append(_problem(field_name, "given more than once"))
            else:
                self._kind = "text"
            return
        raw = options[b"filename"].decode("utf-8", "replace")
        if not raw:
            return  # an <input type=file> left empty: browsers still send the part
        all_file_fields = {f for fields in FILE_FIELDS.values() for f in fields}
        if field_name not in all_file_fields:
            problems.append(_problem(field_name or "body", f"unknown file field (file {raw!r})"))
            return
        name, reason = upload_name(raw)
        if name is None:
            problems.append(_problem(field_name, f"{raw!r}: {reason}"))
            return
        siblings = self.got.files.setdefault(field_name, [])
        if any(u.name == name for u in siblings):
            problems.append(_problem(field_name, f"{name} is uploaded twice"))
            return
        self._count += 1
        if self._count > MAX_FILES:
            raise Refused(422, [_problem(field_name, f"too many files: at most {MAX_FILES} per upload")])
        upload = Upload(field_name, name, self.folder / field_name / name)
        siblings.append(upload)
        self._upload, self._kind = upload, "file"
        self.ops.append(lambda: _open(upload))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._kind == "text":
            if len(self._text) + n > MAX_TEXT_BYTES:
                raise Refused(422, [_problem(self._field, f"longer than {MAX_TEXT_BYTES} bytes")])
            self._text += data[start:end]
        elif self._kind == "file":
            upload = self._upload
            upload.size += n
            self.total += n
            if upload.size > self.max_file_bytes:
                raise TooLarge(upload.field, f"{upload.name} is larger than the limit of {_mb(self.max_file_bytes)} per file")
            if self.total > self.max_total_bytes:
                raise TooLarge(upload.field, f"the files together are larger than the limit of "
                                             f"{_mb(self.max_total_bytes)} per upload (at {upload.name})")
            chunk = data[start:end]
            self.ops.append(lambda: upload.handle.write(chunk))

    def on_part_end(self) -> None:
        if self._kind == "text":
            try:
                self.got.text[self._field] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                self.got.problems.append(_problem(self._field, "not UTF-8 text"))
        elif self._kind == "file":
            self.ops.append(lambda u=self._upload: _close(u))
        self._kind = "skip"

    def on_end(self) -> None:
        self.finished = True

    def run_ops(self) -> None:
        """Run the queued disk work (call in a threadpool)."""
        ops, self.ops = self.ops, []
        for op in ops:
            op()

    def close_all(self) -> None:
        for uploads in self.got.files.values():
            for upload in uploads:
                _close(upload)


def _open(upload: Upload) -> None:
    upload.path.parent.mkdir(exist_ok=True)
    upload.handle = open(upload.path, "xb")


def _close(upload: Upload) -> None:
    if upload.handle is not None:
        upload.handle.close()
        upload.handle = None


async def receive_form(request: Request, stream, receiver: MultipartReceiver) -> Received:
    """Parse the request body from ``stream`` into ``receiver``; raises :class:`Refused`
    (422) for a body that is not complete multipart/form-data, :class:`TooLarge` (413)."""
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise Refused(422, [_problem("body", "send the form as multipart/form-data")])
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > receiver.max_total_bytes + FORM_OVERHEAD:
        raise TooLarge("body", f"the upload is {_mb(int(declared))}, over the limit of "
                               f"{_mb(receiver.max_total_bytes)} per upload")
    try:
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        async for chunk in stream:
            parser.write(chunk)
            if receiver.ops:
                await run_in_threadpool(receiver.run_ops)
        parser.finalize()
    except FormParserError:
        raise Refused(422, [_problem("body", "malformed multipart/form-data")]) from None
    if not receiver.finished:
        raise Refused(422, [_problem("body", "the form data ended early")])
    return receiver.got


async def _drain(stream) -> None:
    # Ordinary clients send the whole body before they read the answer: reading (and
    # dropping) the rest lets them see the 413/422 instead of a reset connection.
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > DRAIN_BYTES:
                return
    except (ClientDisconnect, OSError):
        return


# --- form checks ------------------------------------------------------------------

@dataclass
class ImportForm:
    """The validated form: ``format``, ``name`` (None = the loader's default), ``pixel_size_um``
    (None or 0.001..1000), ``label_suffix`` and the uploads by field."""

    format: str
    name: Optional[str]
    pixel_size_um: Optional[float]
    label_suffix: str
    files: dict[str, list[Upload]]
    problems: list[dict] = field(default_factory=list)


def check_form(got: Received) -> ImportForm:
    """The form's fields checked together. Raises :class:`Refused` (422) listing them all
    when the import cannot even be tried (no or unknown format, a missing file field, a bad
    ``label_suffix``); other problems (ignored files, a bad name or pixel size) are kept in
    ``problems`` so that the loader's are reported with them."""
    problems = list(got.problems)
    blocking = False
    fmt = got.text.get("format", "").strip().lower()
    if fmt not in FORMATS:
        reason = "required" if not fmt else f"unknown format {fmt!r}"
        problems.append(_problem("format", f"{reason}: one of {', '.join(FORMATS)}"))
        blocking = True
    name = got.text.get("name", "").strip() or None
    if name is not None and len(name) > MAX_NAME_CHARS:
        problems.append(_problem("name", f"longer than {MAX_NAME_CHARS} characters"))
    pixel_size = None
    raw_size = got.text.get("pixel_size_um", "").strip()
    if raw_size:
        try:
            pixel_size = float(raw_size)
        except ValueError:
            problems.append(_problem("pixel_size_um", f"not a number: {raw_size!r}"))
        if pixel_size is not None and not (math.isfinite(pixel_size) and 0.001 <= pixel_size <= 1000):
            problems.append(_problem("pixel_size_um", f"{raw_size} is outside 0.001..1000 micrometres per pixel"))
            pixel_size = None  # reported here; the loader need not report it again
    suffix = got.text.get("label_suffix", "")
    if len(suffix) > 100 or re.search(r"[/\\\x00-\x1f]", suffix):
        problems.append(_problem("label_suffix", "at most 100 characters, no '/', '\\' or control characters"))
        blocking = True
    if fmt in FORMATS:
        wanted = FILE_FIELDS[fmt]
        for field_name, uploads in got.files.items():
            if uploads and field_name not in wanted:
                problems.append(_problem(field_name, f"not used by format {fmt} (it takes {', '.join(wanted)})"))
        if suffix and fmt not in ("labels", "patches"):
            problems.append(_problem("label_suffix", f"not used by format {fmt}"))
        for field_name in wanted:
            count = len(got.files.get(field_name, []))
            if count == 0:
                one = field_name in ("annotations", "archive")
                problems.append(_problem(field_name, f"required: upload {'one file' if one else 'at least one file'}"))
                blocking = True
            elif count > 1 and field_name in ("annotations", "archive"):
                problems.append(_problem(field_name, f"one file only, got {count}"))
                blocking = True
    if blocking:
        raise Refused(422, problems)
    return ImportForm(fmt, name, pixel_size, suffix, got.files, problems)


# --- running the loaders ------------------------------------------------------------

class PathScrubber:
    """Turns loader messages about files in the upload folder into ones about uploaded files,
    and says which form field a message is about."""

    def __init__(self, folder: Path, data_dir: Path, fmt: str):
        self.fmt = fmt
        # (prefix in a message, what to show instead, the form field); longest prefixes first
        subs = {"images": ("images/", "the uploaded images", "images"),
                "masks": ("masks/", "the uploaded masks", "masks"),
                "annotations": ("", "the uploaded annotations", "annotations"),
                "archive": ("", "the uploaded archive", "archive"),
                "unpacked": ("", "the archive", "archive")}
        self.rules: list[tuple[str, str, Optional[str]]] = []
        roots = {str(folder), os.path.realpath(folder)}
        for root in roots:
            for sub, (inner, whole, field_name) in subs.items():
                self.rules.append((f"{root}{os.sep}{sub}{os.sep}", inner, field_name))
                self.rules.append((f"{root}{os.sep}{sub}", whole, field_name))
            self.rules.append((root, "the upload", None))
        for root in {str(data_dir), os.path.realpath(data_dir)}:
            self.rules.append((root, "the data directory", None))
        self.rules.sort(key=lambda rule: -len(rule[0]))

    def field_of(self, message: str) -> str:
        first: tuple[int, str] | None = None
        for prefix, _, field_name in self.rules:
            at = message.find(prefix)
            if field_name and at >= 0 and (first is None or at < first[0]):
                first = (at, field_name)
        if first is not None:
            return first[1]
        if "pixel size" in message:
            return "pixel_size_um"
        return FILE_FIELDS[self.fmt][0]

    def scrub(self, message: str) -> str:
        for prefix, replacement, _ in self.rules:
            message = message.replace(prefix, replacement)
        return message

    def problems(self, messages: list[str]) -> list[dict]:
        return [_problem(self.field_of(m), self.scrub(m)) for m in messages]


def unpack_zip(zip_path: Path, dest: Path, max_file_bytes: int, max_total_bytes: int) -> None:
    """Unpack ``zip_path`` into ``dest`` safely. Refused (422, field ``archive``) before
    anything is written: a file that is not a zip, more than ``MAX_ZIP_ENTRIES`` entries, an
    entry that is absolute, has a drive letter or a ``..`` component (zip slip), a symlink, an
    encrypted entry. Then, counting the bytes actually unpacked rather than trusting the
    headers: an entry over ``max_file_bytes`` or a total over ``max_total_bytes`` is a
    :class:`TooLarge` (zip bombs stop there). ``__MACOSX/`` entries are skipped."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise Refused(422, [_problem("archive", f"{zip_path.name} is not a zip file")]) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise Refused(422, [_problem("archive", f"more than {MAX_ZIP_ENTRIES} entries")])
        problems, members = [], []
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or "\x00" in name:
                problems.append(_problem("archive", f"entry {name!r} points outside the archive's folder"))
            elif stat.S_ISLNK(info.external_attr >> 16):
                problems.append(_problem("archive", f"entry {name!r} is a symbolic link"))
            elif info.flag_bits & 0x1:
                problems.append(_problem("archive", f"entry {name!r} is encrypted"))
            else:
                parts = [p for p in parts if p not in ("", ".")]
                if parts and not info.is_dir() and parts[0] != "__MACOSX":
                    members.append((info, parts))
        if problems:
            raise Refused(422, problems)
        total = 0
        for info, parts in members:
            shown = "/".join(parts)
            target = dest.joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as out:
                    size = 0
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        total += len(chunk)
                        if size > max_file_bytes:
                            raise TooLarge("archive", f"entry {shown} unpacks to more than the limit of "
                                                      f"{_mb(max_file_bytes)} per file")
                        if total > max_total_bytes:
                            raise TooLarge("archive", f"the archive unpacks to more than the limit of "
                                                      f"{_mb(max_total_bytes)}")
                        out.write(chunk)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise Refused(422, [_problem("archive", f"entry {shown} appears twice or clashes with a folder")]) from None
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
                raise Refused(422, [_problem("archive", f"entry {shown} cannot be unpacked: {exc}")]) from None


def dsb_root(unpacked: Path) -> Path:
    """The folder holding the ``<id>/images`` folders: ``unpacked`` itself, or the folder a
    single top folder chain leads to (a zip of ``stage1_train/`` unpacks one level deeper)."""
    root = unpacked
    for _ in range(4):
        children = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if any((p / "images").is_dir() for p in children) or len(children) != 1:
            return root
        root = children[0]
    return root


def _pairs_problems(form: ImportForm) -> list[dict]:
    from server.imports.labels import _IMAGE_SUFFIXES  # the suffixes pair_by_stem lists

    problems = []
    suffix = form.label_suffix
    images, masks = form.files["images"], form.files["masks"]
    for upload in images + masks:
        if Path(upload.name).suffix.lower() not in _IMAGE_SUFFIXES:
            problems.append(_problem(upload.field, f"{upload.name}: not an image file name "
                                                   f"(expected {', '.join(sorted(_IMAGE_SUFFIXES))})"))
    wanted = {Path(u.name).stem + suffix for u in images}
    for upload in masks:
        if Path(upload.name).stem not in wanted:
            problems.append(_problem("masks", f"{upload.name} matches no uploaded image (a mask's name is the "
                                              f"image's name{' + ' + repr(suffix) if suffix else ''}, any image extension)"))
    if suffix:
        for upload in images:
            if Path(upload.name).stem.endswith(suffix):
                problems.append(_problem("images", f"{upload.name} ends with the label suffix {suffix!r}"))
    return problems


def build_plan(form: ImportForm, folder: Path, max_file_bytes: int, scrub: PathScrubber,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ImportPlan:
    """Run the loader of ``form.format`` on the saved uploads. Raises :class:`Refused` (422)
    listing every problem -- the form's, the pairing's and the loader's together -- and
    :class:`TooLarge` for a zip that unpacks too large."""
    problems = list(form.problems)
    plan = None
    try:
        plan = _load(form, folder, max_file_bytes, scrub, problems, max_image_pixels)
    except ImportValidationError as exc:
        problems += scrub.problems(exc.problems)
    except Refused as exc:
        if exc.status == 422:
            exc.problems[:0] = problems
        raise
    if problems or plan is None:
        raise Refused(422, problems)
    return plan


def _load(form: ImportForm, folder: Path, max_file_bytes: int, scrub: PathScrubber,
          problems: list[dict], max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Optional[ImportPlan]:
    from server.imports import coco, dsb, labels

    common = dict(pixel_size_um=form.pixel_size_um, max_file_bytes=max_file_bytes,
                  max_image_pixels=max_image_pixels)
    if form.format in ("labels", "patches"):
        problems += _pairs_problems(form)
        try:
            pairs = labels.pair_by_stem(folder / "images", folder / "masks", label_suffix=form.label_suffix)
        except ImportValidationError as exc:
            problems += scrub.problems(exc.problems)
            return None
        images = form.files["images"]
        default = Path(images[0].name).stem + (f" and {len(images) - 1} more" if len(images) > 1 else "")
        loader = labels.load_label_images if form.format == "labels" else labels.load_patch_labels
        return loader(pairs, name=form.name or default, **common)
    if form.format == "coco":
        annotations = form.files["annotations"][0]
        plan = coco.load_coco(annotations.path, folder / "images", name=form.name, **common)
        used = {im.file_name for im in plan.images}
        for upload in form.files["images"]:
            if upload.name not in used:
                plan.warnings.append(f"{upload.name} is not named in {annotations.name} and was not imported")
        return plan
    archive = form.files["archive"][0]
    unpacked = folder / "unpacked"
    unpacked.mkdir()
    unpack_zip(archive.path, unpacked, max_file_bytes, max_file_bytes)
    root = dsb_root(unpacked)
    default = root.name if root != unpacked else Path(archive.name).stem
    return dsb.load_dsb_folders(root, name=form.name or default, **common)


def run_import(app: FastAPI, form: ImportForm, folder: Path, owner_id: int) -> dict:
    """Validate with the loader and persist, owned by ``owner_id`` (blocking: run in a
    threadpool); the 201 body."""
    from server.projects import persist_project

    settings = app.state.settings
    scrub = PathScrubber(folder, Path(os.path.abspath(settings.data_dir)), form.format)
    plan = build_plan(form, folder, settings.max_upload_bytes, scrub, settings.max_image_pixels)
    project = plan.to_project()
    project.import_warnings = [scrub.scrub(w) for w in plan.warnings]  # kept, and repeated by exports
    project_id = persist_project(app.state.db, app.state.files_root, project, plan.sources(),
                                 owner_id=owner_id)
    return {"project_id": project_id, "name": plan.name, "images": len(plan.images),
            "objects": plan.object_count, "warnings": project.import_warnings}


def add_import_routes(app: FastAPI) -> None:
    """Add ``POST /api/projects/import`` (see the module docstring) to ``app``, whose
    ``state`` holds ``settings``, ``db`` and ``files_root``. Upload folders left by a
    previous process (killed mid-upload) are removed now."""
    uploads = Path(os.path.abspath(app.state.settings.data_dir)) / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)
    uploads.mkdir(mode=0o700)  # there from the start: a refused upload leaves the folder as it found it

    @app.post("/api/projects/import", status_code=201)
    async def import_project(request: Request, user_id: int = Depends(auth.require_user)):
        limit = app.state.settings.max_upload_bytes
        folder = uploads / f"import-{uuid.uuid4().hex}"
        await run_in_threadpool(lambda: folder.mkdir(parents=True))
        receiver = MultipartReceiver(folder, limit, limit)
        stream = request.stream()
        try:
            try:
                got = await receive_form(request, stream, receiver)
            except Refused:
                await _drain(stream)
                raise
            finally:
                await run_in_threadpool(receiver.close_all)
            form = check_form(got)
            body = await run_in_threadpool(run_import, app, form, folder, user_id)
            return JSONResponse(status_code=201, content=body)
        except Refused as exc:
            return JSONResponse(status_code=exc.status, content={"detail": exc.problems})
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            await run_in_threadpool(shutil.rmtree, folder, True)
