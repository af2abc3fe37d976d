"""The image selection grid as a ``Component``: one check box per image with its thumbnail
(``GET /api/projects/{pid}/images/{iid}/thumbnail``), Select all / Select none, and the
count of chosen images and objects. One delegated ``change`` listener serves every box.
"""
from __future__ import annotations

from typing import Any

from app.browser.dom import Component, attr, el, h, set_text
from app.browser.page_state import PageState


def thumbnail_url(project_id: int, image_id: int) -> str:
    """The server's PNG thumbnail of one image (``GET .../images/{iid}/thumbnail``)."""
    return f"/api/projects/{project_id}/images/{image_id}/thumbnail"


class ImagesView(Component):
    """The ``<ul id="image-grid">`` of ``state``'s project."""

    def __init__(self, state: PageState) -> None:
        super().__init__()
        self.state = state

    def build(self) -> Any:
        project_id = int(self.state.project["id"])
        items = []
        for image in self.state.images:
            image_id = int(image["id"])
            count = int(image.get("object_count", 0))
            box_id = f"image-{image_id}"
            items.append(h(
                "li", {"class_": "thumb"},
                h("input", {"type": "checkbox", "id": box_id, "class_": "thumb-check",
                            "data": {"image-id": image_id}}),
                h("label", {"for": box_id},
                  h("img", {"src": thumbnail_url(project_id, image_id), "alt": "", "loading": "lazy",
                            "width": 128, "height": 128, "decoding": "async"}),
                  h("span", {"class_": "thumb-name", "text": image.get("file_name", f"image {image_id}")}),
                  h("span", {"class_": "thumb-count", "text": f"{count} object" + ("" if count == 1 else "s")})),
            ))
        return h("ul", {"id": "image-grid", "class_": "grid", "aria-describedby": "image-summary"}, *items)

    def setup(self) -> None:
        self.listen(self.root, "change", self._on_change)
        select_all, select_none = el("select-all"), el("select-none")
        select_all.disabled = select_none.disabled = False
        self.listen(select_all, "click", lambda event: self.state.select_all())
        self.listen(select_none, "click", lambda event: self.state.select_none())
        self.effect(self._render)

    def _on_change(self, event: Any) -> None:
        target = event.target
        image_id = attr(target, "data-image-id")
        if image_id.isdigit():
            self.state.select(int(image_id), bool(target.checked))

    def _render(self) -> None:
        chosen = self.state.selected.value
        for box in self.root.querySelectorAll("input.thumb-check"):
            want = int(attr(box, "data-image-id")) in chosen
            if bool(box.checked) != want:
                box.checked = want
        set_text(el("image-summary"), self.state.selection_text())
        problem = self.state.validation.value.errors.get("image_ids", "")
        error = el("image-error")
        set_text(error, problem)
        error.hidden = not problem
