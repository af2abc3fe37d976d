"""``python -m server projects list|share|unshare|delete`` and ``import --owner``."""
from __future__ import annotations

import numpy as np
from PIL import Image

from server import accounts, member_store, project_store
from server.cli import main
from server.demo import generate_demo
from server.jobs import JobStore
from server.projects import persist_project
from server.services import open_data_dir


def _folder_with_a_project(tmp_path):
    data = tmp_path / "data"
    db = open_data_dir(data)
    alice = accounts.ensure_user(db, "alice")
    accounts.ensure_user(db, "bob")
    demo = generate_demo(n_images=1, size=64)
    project_id = persist_project(db, data / "files", demo.project, [demo.image_bytes[1]], owner_id=alice)
    return data, db, project_id


def test_share_list_unshare_and_delete(tmp_path, capsys):
    data, db, project_id = _folder_with_a_project(tmp_path)
    bob = accounts.user_id(db, "bob")
    assert main(["projects", "--data-dir", str(data), "share", str(project_id), "bob", "--role", "editor"]) == 0
    assert member_store.role_of(db, project_id, bob) == "editor"
    assert main(["projects", "--data-dir", str(data), "list"]) == 0
    out = capsys.readouterr().out
    assert f"{project_id}\tDemo: synthetic nuclei\towner alice\tprivate" in out and "bob (editor)" in out
    # bob's active export of it is cancelled when he loses it
    from app.models import ExportOptions

    store = JobStore(db, data / "exports", lambda _user, _event: None)
    job, _ = store.create(bob, project_id, ExportOptions())
    assert main(["projects", "--data-dir", str(data), "unshare", str(project_id), "bob"]) == 0
    assert store.get(job.id).status == "cancelled"
    assert project_store.project_access(db, bob, project_id)[1] is None
    assert main(["projects", "--data-dir", str(data), "unshare", str(project_id), "bob"]) == 2
    assert "not a member" in capsys.readouterr().err
    assert main(["projects", "--data-dir", str(data), "share", str(project_id), "nobody"]) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err
    assert main(["projects", "--data-dir", str(data), "delete", str(project_id)]) == 2
    assert project_store.project_row(db, project_id) is not None
    assert main(["projects", "--data-dir", str(data), "delete", str(project_id), "--yes"]) == 0
    assert project_store.project_row(db, project_id) is None
    assert not any((data / "files").iterdir())
    assert main(["projects", "--data-dir", str(data), "delete", str(project_id), "--yes"]) == 2


def test_import_gives_the_project_to_its_owner(tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(folder / "a.png")
    labels = np.zeros((20, 30), np.uint16)
    labels[5:10, 5:12] = 1
    Image.fromarray(labels).save(folder / "a_cp_masks.png")
    data = tmp_path / "data"
    accounts.ensure_user(open_data_dir(data), "carol")
    args = ["import", "labels", str(folder), str(folder), "--label-suffix", "_cp_masks", "--data-dir", str(data)]
    assert main(args + ["--owner", "nobody"]) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err
    assert main(args + ["--owner", "carol"]) == 0
    db = open_data_dir(data)
    carol = accounts.user_id(db, "carol")
    assert [(p["owner"], p["access"]) for p in project_store.visible_projects(db, carol)] == [("carol", "owner")]
