from server.archive.names import assign_archive_names, safe_name
from server.domain import ImageRecord


def _images(*names, path=None):
    return [ImageRecord(i, n, 10, 10, path) for i, n in enumerate(names, start=1)]


def test_duplicate_names_get_numbered_suffixes_in_order():
    names = assign_archive_names(_images("cells.png", "cells.png", "cells.png"))
    assert [names[i].file_name for i in (1, 2, 3)] == ["cells.png", "cells_2.png", "cells_3.png"]
    assert [names[i].stem for i in (1, 2, 3)] == ["cells", "cells_2", "cells_3"]


def test_stems_are_unique_across_extensions_and_case():
    # Ultralytics pairs image and label by stem; unpacking on a case-insensitive disk merges A/a.
    names = assign_archive_names(_images("a.png", "A.tif", "a.jpg"))
    stems = [names[i].stem.casefold() for i in (1, 2, 3)]
    assert len(set(stems)) == 3
    assert names[2].file_name == "A_2.tif"


def test_a_generated_suffix_never_collides_with_a_later_real_name():
    names = assign_archive_names(_images("x.png", "x.png", "x_2.png"))
    files = [names[i].file_name for i in (1, 2, 3)]
    assert files == ["x.png", "x_2.png", "x_2_2.png"]


def test_same_input_same_names():
    imgs = _images("b.png", "b.png", "c.png")
    assert assign_archive_names(imgs) == assign_archive_names(imgs)


def test_paths_and_unsafe_characters_are_removed():
    assert safe_name("../../etc/passwd", "f") == ("passwd", "")
    assert safe_name("C:\\data\\run 1\\img:1?.tif", "f") == ("img_1_", ".tif")
    assert safe_name("", "image_7") == ("image_7", "")
    assert safe_name("...", "image_7") == ("image_7", "")
    assert safe_name("con.png", "f") == ("_con", ".png")


def test_missing_extension_is_taken_from_the_stored_file():
    names = assign_archive_names(_images("scan", path="/store/abc123.tif"))
    assert names[1].file_name == "scan.tif"


def test_duplicate_image_ids_are_rejected():
    import pytest

    with pytest.raises(ValueError, match="appears twice"):
        assign_archive_names([ImageRecord(1, "a", 1, 1), ImageRecord(1, "b", 1, 1)])
