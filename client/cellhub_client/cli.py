"""``python -m cellhub_client`` (also installed as ``cellhub``): projects, jobs, export,
cancel and download from a terminal, with a tqdm progress bar.

    python -m cellhub_client export --url URL --project 1 --annotations coco,yolo \\
        --metrics csv --images --overlays --pixel-size-um 0.65 -o out.zip

The token comes from ``CELLHUB_TOKEN`` or the config file (``cellhub_client.config``), never
from the command line. Exit codes (``EXIT``): 0 done; 1 another error of the hub; 2 bad
usage or options; 3 no token, or a token refused (401/403); 4 no such project or export;
5 the export failed, was cancelled elsewhere or has expired; 6 a conflict (another export
of the project runs with other options, not finished yet, already downloaded so it
cannot be cancelled); 7 the archive failed verification (nothing kept); 8 the hub could
not be reached; 130 interrupted by Ctrl+C (an export is cancelled first; nothing kept).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, Sequence

from cellhub_client import config
from cellhub_client.client import Client, __version__
from cellhub_client.errors import (AlreadyDownloaded, ArchiveCorrupt, AuthenticationFailed, CellhubError, Conflict,
                                   ExportFailed, ExportInterrupted, Forbidden, Gone, InvalidRequest, NotFound,
                                   Unreachable)
from cellhub_client.progress import ProgressUpdate

EXIT = {"ok": 0, "error": 1, "usage": 2, "auth": 3, "not found": 4, "failed": 5, "conflict": 6, "corrupt": 7,
        "unreachable": 8, "interrupted": 130}
_ERROR_EXITS: list[tuple[type[BaseException], str]] = [
    (AuthenticationFailed, "auth"), (Forbidden, "auth"), (NotFound, "not found"), (InvalidRequest, "usage"),
    (ExportFailed, "failed"), (Gone, "failed"), (Conflict, "conflict"), (ArchiveCorrupt, "corrupt"),
    (Unreachable, "unreachable"),
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; its exit code (``EXIT``)."""
    args = _parser().parse_args(argv)
    try:
        settings = config.resolve(args.url, args.config)
    except config.ConfigError as exc:
        return _fail(str(exc), "usage")
    if not settings.url:
        return _fail(f"which hub? give --url, set {config.URL_VARIABLE} or put url = \"...\" in {settings.config_path}",
                     "usage")
    if not settings.token:
        return _fail(f"no API token: set {config.TOKEN_VARIABLE} or put token = \"...\" in {settings.config_path} "
                     "(make one in the hub's page, panel \"API tokens\")", "auth")
    client = Client(settings.url, settings.token, use_websocket=not args.poll, retry_for=args.retry_for)
    try:
        return args.run(client, args)
    except ExportInterrupted as stopped:
        print(stopped.message, file=sys.stderr)
        return EXIT["interrupted"]
    except KeyboardInterrupt:
        print("Interrupted; nothing was kept.", file=sys.stderr)
        return EXIT["interrupted"]
    except CellhubError as exc:
        if isinstance(exc, AlreadyDownloaded):
            return _fail(f"export {getattr(args, 'job', '')} was already downloaded (the server started sending it), so it "
                         "cannot be cancelled", "conflict")
        name = next((code for kind, code in _ERROR_EXITS if isinstance(exc, kind)), "error")
        return _fail(exc.message, name)


def _fail(message: str, code: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT[code]


# --- commands -------------------------------------------------------------------------
def cmd_projects(client: Client, args: argparse.Namespace) -> int:
    projects = client.projects()
    if args.json:
        print(json.dumps(projects, indent=2))
    else:
        _table(["ID", "IMAGES", "NAME"], [[p["id"], p.get("image_count", ""), p["name"]] for p in projects])
    return EXIT["ok"]


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    jobs = client.jobs(args.project)
    if args.json:
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
    else:
        _table(["JOB", "STATUS", "CREATED", "SIZE", "DOWNLOADED"],
               [[j.id, j.status, j.created_at, _size(j.size_bytes), "yes" if j.delivered else ""] for j in jobs])
    return EXIT["ok"]


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.job)
    print(f"Export {job.id} is {job.status}.")
    return EXIT["ok"]


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    with _Bars(args.progress) as bars:
        result = client.download(args.job, args.output, progress=bars.update)
    _saved(result)
    return EXIT["ok"]


def cmd_export(client: Client, args: argparse.Namespace) -> int:
    options = _options(args)
    with _Bars(args.progress) as bars:
        result = client.export(args.project, options, args.output, progress=bars.update)
    _saved(result)
    return EXIT["ok"]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"include_images": args.images, "include_visualizations": args.overlays}
    if args.annotations is not None:
        options["annotation_formats"] = _list(args.annotations)
    if args.metrics is not None:
        options["metrics_formats"] = _list(args.metrics)
    if args.pixel_size_um is not None:
        options["pixel_size_um"] = args.pixel_size_um
    if args.image_ids is not None:
        options["image_ids"] = [int(item) for item in _list(args.image_ids)]
    return options


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip() and item.strip() != "none"]


def _saved(result: Any) -> None:
    members = len(result.metadata.get("files", {})) + 1
    print(f"Saved {result.path} ({_size(result.size_bytes)}, {members} files verified, sha256 {result.sha256})")


def _size(value: Optional[int]) -> str:
    if value is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return ""


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


class _Bars:
    """tqdm bars on stderr: the export's percent, then the download's bytes."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.phase = ""

    def __enter__(self) -> "_Bars":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()

    def update(self, event: ProgressUpdate) -> None:
        if not self.enabled:
            return
        if event.phase != self.phase:
            self._open(event)
        if event.phase == "export":
            self.bar.set_postfix_str(event.job.message[:40], refresh=False)
            self.bar.update(event.percent - self.bar.n)
        else:
            if event.total_bytes and self.bar.total != event.total_bytes:
                self.bar.total = event.total_bytes
            self.bar.update(event.done_bytes - self.bar.n)

    def _open(self, event: ProgressUpdate) -> None:
        from tqdm import tqdm

        self._close()
        self.phase = event.phase
        if event.phase == "export":
            self.bar = tqdm(total=100, desc="export", unit="%", bar_format="{l_bar}{bar}| {n:.0f}% {postfix}",
                            file=sys.stderr)
        else:
            self.bar = tqdm(total=event.total_bytes, desc="download", unit="B", unit_scale=True, file=sys.stderr)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the hub (else ${config.URL_VARIABLE} or the config file)")
    common.add_argument("--config", help="config file (default: ~/.config/cellhub/config.toml)")
    common.add_argument("--poll", action="store_true", help="follow progress by polling, not the WebSocket")
    common.add_argument("--retry-for", type=float, default=60.0, metavar="SECONDS",
                        help="how long to retry while the hub does not answer (default 60)")
    parser = argparse.ArgumentParser(prog="python -m cellhub_client", description="Export projects of a cell segmentation hub: list projects and exports, export, "
                                                 "cancel and download, with a progress bar.",
                                     epilog="Token: $CELLHUB_TOKEN or the config file. Exit codes: "
                                            + ", ".join(f"{v} {k}" for k, v in EXIT.items()))
    parser.add_argument("--version", action="version", version=f"cellhub-client {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    command("projects", cmd_projects, "list the projects you may export").add_argument("--json", action="store_true")
    jobs = command("jobs", cmd_jobs, "list your recent exports of a project")
    jobs.add_argument("--project", type=int, required=True)
    jobs.add_argument("--json", action="store_true")
    command("cancel", cmd_cancel, "cancel an export").add_argument("job")
    download = command("download", cmd_download, "download a completed export (again)")
    download.add_argument("job")
    _output_and_progress(download)
    export = command("export", cmd_export, "export a project and download the archive")
    export.add_argument("--project", type=int, required=True)
    export.add_argument("--annotations", help="comma-separated: coco, yolo, json (default coco; 'none')")
    export.add_argument("--metrics", help="comma-separated: csv, xlsx, json (default none)")
    export.add_argument("--images", action="store_true", help="include the original images")
    export.add_argument("--overlays", action="store_true", help="include visualizations")
    export.add_argument("--pixel-size-um", type=float, help="micrometres per pixel for the metrics")
    export.add_argument("--image-ids", help="comma-separated image ids (default: all)")
    _output_and_progress(export)
    return parser


def _output_and_progress(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", required=True, help="where to save the archive (.zip)")
    sub.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                     help="show progress bars (default: when stderr is a terminal)")
