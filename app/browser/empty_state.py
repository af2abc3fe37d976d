"""What a user without any project sees: how to bring one in (the page has no upload form)."""
from __future__ import annotations

import js  # type: ignore[import-not-found]

from app.browser.dom import el, h

CLI_EXAMPLE = ".venv/bin/python -m server import labels --owner YOUR_NAME --name \"My nuclei\" IMAGES_DIR LABELS_DIR"
UPLOAD_EXAMPLE = ("curl -b cookies.txt -H 'X-Requested-With: cellhub' -F format=labels "
                  "-F images=@img.tif -F masks=@img.tif " + "{origin}/api/projects/import")


def show_no_projects() -> None:
    """Fill ``main`` with ``#no-projects``: the two ways to import a project."""
    origin = str(js.location.origin)
    section = h(
        "section", {"id": "no-projects", "class_": "card", "aria-labelledby": "no-projects-heading"},
        h("h1", {"id": "no-projects-heading"}, "You have no projects yet"),
        h("p", {}, "Projects you import are private to you until you share them. "
                   "Import images with their segmentations (COCO, label images, colour masks or "
                   "2018 Data Science Bowl folders) in one of two ways:"),
        h("ol", {},
          h("li", {}, "On the server, with the command line:", h("pre", {}, h("code", {}, CLI_EXAMPLE))),
          h("li", {}, "From your computer, as a multipart upload while signed in:",
            h("pre", {}, h("code", {}, UPLOAD_EXAMPLE.format(origin=origin))))),
        h("p", {}, "Then reload this page. A project someone shares with you appears here too."),
    )
    main = el("main")
    main.replaceChildren(section)
    main.removeAttribute("aria-busy")
