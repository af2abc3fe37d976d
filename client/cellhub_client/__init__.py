"""Python client of a cell segmentation hub's exports (CPython, and Pyodide through
pyodide-http), and its CLI ``python -m cellhub_client``.

    from cellhub_client import Client
    hub = Client("http://127.0.0.1:8000", token="chub_...")   # or CELLHUB_TOKEN
    hub.export(1, {"annotation_formats": ["coco"], "metrics_formats": ["csv"]}, "export.zip")

The options, the job JSON and the error shape are the page's own models
(``cellhub_client.shared``); see the hub's README, "Python client and CLI".
"""
from cellhub_client.client import Client, __version__, export_options, new_start_token
from cellhub_client.download import Download
from cellhub_client.errors import (AlreadyDownloaded, ArchiveCorrupt, AuthenticationFailed, CellhubError, Conflict,
                                   ExportActive, ExportFailed, ExportInterrupted, Forbidden, Gone, InvalidRequest,
                                   NotFound, ServerError, ServerRefused, Unreachable)
from cellhub_client.progress import ProgressUpdate
from cellhub_client.shared.models import ExportJob, ExportOptions, VisualizationOptions

__all__ = [
    "AlreadyDownloaded", "ArchiveCorrupt", "AuthenticationFailed", "CellhubError", "Client", "Conflict", "Download",
    "ExportActive", "ExportFailed", "ExportInterrupted", "ExportJob", "ExportOptions", "Forbidden", "Gone",
    "InvalidRequest", "NotFound", "ProgressUpdate", "ServerError", "ServerRefused", "Unreachable",
    "VisualizationOptions", "__version__", "export_options", "new_start_token",
]
