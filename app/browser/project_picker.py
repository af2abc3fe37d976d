"""The header's project picker (``#project-select``) with one ``<optgroup>`` per group of
``app.project_groups``: my projects, shared with me (owner and role), public."""
from __future__ import annotations

from typing import Any

from app.browser.dom import el, h
from app.project_groups import group_projects


def fill_picker(projects: list[dict], project_id: int) -> None:
    """Fill and enable the picker; the Open button shows only when there is another project."""
    select = el("project-select")
    groups = group_projects(projects)
    children: list[Any] = []
    for label, options in groups:
        children.append(h("optgroup", {"label": label},
                          *[h("option", {"value": pid, "selected": pid == project_id}, text) for pid, text in options]))
    select.replaceChildren(*children)
    select.disabled = False
    button = el("project-open")
    button.hidden = len(projects) < 2  # nothing to switch to
    button.disabled = len(projects) < 2
