"""The project picker's groups (R9): the user's own projects, those shared with them, and
public ones, from ``GET /api/projects`` (each item has ``id``, ``name``, ``image_count``,
``owner``, ``access``: ``owner``, ``editor``, ``viewer`` or ``public``)."""
from __future__ import annotations

from typing import Any

GROUPS = (("owner", "My projects"), ("shared", "Shared with me"), ("public", "Public"))


def _group(access: Any) -> str:
    if access in ("editor", "viewer"):
        return "shared"
    return "public" if access == "public" else "owner"


def option_label(project: dict) -> str:
    """``Name (12 images)``; a shared project adds its owner and the user's role, a public
    one its owner: ``Name · alice, viewer (12 images)``."""
    name = str(project.get("name", project.get("id", "")))
    access, owner = project.get("access"), project.get("owner")
    if access in ("editor", "viewer") and owner:
        name += f" · {owner}, {access}"
    elif access == "public" and owner:
        name += f" · {owner}"
    count = project.get("image_count")
    if count is None:
        return name
    return name + (" (1 image)" if count == 1 else f" ({count} images)")


def group_projects(projects: list[dict]) -> list[tuple[str, list[tuple[int, str]]]]:
    """``[(group label, [(project id, option label), ...])]`` in the picker's order; groups
    without a project are left out, projects keep the list's order within a group."""
    grouped: dict[str, list[tuple[int, str]]] = {key: [] for key, _ in GROUPS}
    for project in projects:
        grouped[_group(project.get("access"))].append((int(project.get("id", 0)), option_label(project)))
    return [(label, grouped[key]) for key, label in GROUPS if grouped[key]]
