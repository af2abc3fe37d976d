"""``python -m cellhub_client``: the CLI (``cellhub_client.cli``)."""
from cellhub_client.cli import main

raise SystemExit(main())
