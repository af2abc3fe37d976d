"""The project picker's groups (``app.project_groups``)."""
from app.project_groups import group_projects, option_label


def test_projects_are_grouped_owned_shared_public_in_list_order():
    projects = [
        {"id": 1, "name": "Demo", "image_count": 12, "owner": "local", "access": "public"},
        {"id": 2, "name": "Mine", "image_count": 3, "owner": "alice", "access": "owner"},
        {"id": 3, "name": "Bob's", "image_count": 1, "owner": "bob", "access": "viewer"},
        {"id": 4, "name": "Carol's", "image_count": 2, "owner": "carol", "access": "editor"},
        {"id": 5, "name": "Older", "owner": "alice", "access": "owner"},
    ]
    assert group_projects(projects) == [
        ("My projects", [(2, "Mine (3 images)"), (5, "Older")]),
        ("Shared with me", [(3, "Bob's · bob, viewer (1 image)"), (4, "Carol's · carol, editor (2 images)")]),
        ("Public", [(1, "Demo · local (12 images)")]),
    ]


def test_empty_groups_are_left_out_and_a_listing_without_access_counts_as_owned():
    assert group_projects([{"id": 7, "name": "Old server"}]) == [("My projects", [(7, "Old server")])]
    assert group_projects([]) == []
    assert option_label({"id": 9}) == "9"
