"""``python -m server projects list|share|unshare|delete``: projects and who may see them (R9).

- ``list``: every project with its owner, visibility and members;
- ``share PROJECT_ID USERNAME [--role viewer|editor]``: add a member or change their role;
- ``unshare PROJECT_ID USERNAME``: remove a member; their exports of it are cancelled and
  their archives of it deleted (unless the project is public);
- ``delete PROJECT_ID --yes``: delete the project with its images, thumbnails, exports and
  archives.

They work on the data folder's database directly, also while a server runs on it: a job
cancelled here is seen by that server's worker at its next progress report (its pages learn
it on their next poll).
"""
from __future__ import annotations

import argparse
import sys

from server import member_store, project_store


def _changes(args: argparse.Namespace):
    from server.jobs import JobStore
    from server.services import open_data_dir
    from server.sharing import AccessChanges

    data_dir = args.data_dir_path
    db = open_data_dir(data_dir)
    store = JobStore(db, data_dir / "exports", lambda _user, _event: None)
    return db, AccessChanges(db, store, data_dir, data_dir / "files", cancel=store.cancel)


def _project_or_none(db, project_id: int):
    row = project_store.project_row(db, project_id)
    if row is None:
        print(f"error: there is no project {project_id}", file=sys.stderr)
    return row


def cmd_projects(args: argparse.Namespace) -> int:
    from server.cli import _data_dir
    from server.sharing import ShareError, member_id

    args.data_dir_path = _data_dir(args.data_dir)
    db, changes = _changes(args)
    if args.projects_cmd == "list":
        for p in project_store.list_projects(db):
            shared = ", ".join(f"{m['username']} ({m['role']})" for m in member_store.members(db, p["id"])[1:])
            print(f"{p['id']}\t{p['name']}\towner {p['owner'] or '-'}\t{'public' if p['public'] else 'private'}"
                  f"\t{p['image_count']} images\tshared with: {shared or 'nobody'}")
        return 0
    if _project_or_none(db, args.project_id) is None:
        return 2
    if args.projects_cmd == "share":
        try:
            outcome = changes.share(args.project_id, args.username, args.role)
        except ShareError as exc:
            print(f"error: {exc.field}: {exc.reason}", file=sys.stderr)
            return 2
        print(f"{args.username} is {'now ' if outcome != 'unchanged' else ''}{args.role} of project {args.project_id}")
        return 0
    if args.projects_cmd == "unshare":
        target = member_id(db, args.project_id, args.username)
        if target is None:
            print(f"error: {args.username} is not a member of project {args.project_id}", file=sys.stderr)
            return 2
        changes.unshare(args.project_id, target)
        print(f"{args.username} removed from project {args.project_id}")
        return 0
    if not args.yes:
        print("error: deleting a project removes its images and exports for good; add --yes", file=sys.stderr)
        return 2
    changes.delete(args.project_id)
    print(f"project {args.project_id} deleted")
    return 0


def add_projects_parser(sub: argparse._SubParsersAction, default_data_dir: str) -> None:
    """Add the ``projects`` verb to the service's sub-command parser."""
    parser = sub.add_parser("projects", help="list, share, unshare or delete projects")
    parser.add_argument("--data-dir", default=default_data_dir)
    verbs = parser.add_subparsers(dest="projects_cmd", required=True)
    verbs.add_parser("list", help="every project with its owner and members")
    share = verbs.add_parser("share", help="give a user a role on a project")
    share.add_argument("project_id", type=int)
    share.add_argument("username")
    share.add_argument("--role", choices=("viewer", "editor"), default="viewer")
    unshare = verbs.add_parser("unshare", help="remove a member from a project")
    unshare.add_argument("project_id", type=int)
    unshare.add_argument("username")
    delete = verbs.add_parser("delete", help="delete a project with its images and exports")
    delete.add_argument("project_id", type=int)
    delete.add_argument("--yes", action="store_true", help="really delete")
    parser.set_defaults(func=cmd_projects)
