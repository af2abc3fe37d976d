import copy
import dataclasses
import json

import pytest

from server.archive.native_json import SCHEMA_VERSION, iter_native_json, load_native_json, native_dict


def _without_paths(project):
    clone = copy.deepcopy(project)
    for image in clone.images:
        image.path = None
    return clone


def test_round_trip_gives_the_same_project(synthetic_project):
    data = native_dict(synthetic_project)
    assert data["schema"] == "cellhub.project" and data["schema_version"] == SCHEMA_VERSION
    loaded = load_native_json(json.loads(json.dumps(data)))
    assert loaded == _without_paths(synthetic_project)
    # Points are tuples again, as in the domain model.
    assert isinstance(loaded.images[0].objects[0].polygons[0][0][0], tuple)


def test_round_trip_keeps_full_float_precision():
    from server.domain import ImageRecord, ProjectRecord, SegObject

    ring = [(0.1 + 0.2, 1 / 3), (10.000000000000002, 2.5e-7), (5.123456789012345, 9.87654321)]
    project = ProjectRecord(3, "p", ["c"], 0.123456789, images=[
        ImageRecord(1, "a.png", 20, 20, None, [SegObject(9, "c", [[ring]])])])
    text = "".join(iter_native_json(project, project.images))
    assert load_native_json(text) == project


def test_round_trip_of_the_real_data(real_project):
    text = "".join(iter_native_json(real_project, real_project.images))
    assert load_native_json(text.encode("utf-8")) == _without_paths(real_project)


def test_no_server_path_is_written(synthetic_project):
    text = "".join(iter_native_json(synthetic_project, synthetic_project.images))
    for image in synthetic_project.images:
        assert image.path not in text
    assert json.loads(text)["images"][2]["archive_file_name"] == "cells_2.png"


def test_unknown_version_and_other_schemas_are_rejected(synthetic_project):
    data = native_dict(synthetic_project)
    with pytest.raises(ValueError, match="unsupported schema_version 2"):
        load_native_json({**data, "schema_version": 2})
    with pytest.raises(ValueError, match="not a cellhub.project document"):
        load_native_json({**data, "schema": "coco"})
    with pytest.raises(ValueError, match="not JSON"):
        load_native_json("{broken")


def test_malformed_document_names_the_field(synthetic_project):
    data = native_dict(synthetic_project)
    data["images"][1]["objects"][0]["polygons"] = [[[[1, "x"]]]]
    with pytest.raises(ValueError, match=r"images\.1\.objects\.0\.polygons"):
        load_native_json(data)


def test_dataclass_fields_are_all_written(synthetic_project):
    # A new domain field must not be silently dropped by the export.
    from server.domain import ImageRecord, ProjectRecord, SegObject

    data = native_dict(synthetic_project)
    assert set(data["project"]) | {"images"} == {f.name for f in dataclasses.fields(ProjectRecord)}
    assert set(data["images"][0]) - {"archive_file_name"} | {"path"} == {f.name for f in dataclasses.fields(ImageRecord)}
    assert set(data["images"][0]["objects"][0]) == {f.name for f in dataclasses.fields(SegObject)}
