"""``python -m server run|import|users ...``: see ``server.cli``."""
from server.cli import main

raise SystemExit(main())
