"""``python -m bench.serve``: the service as ``python -m server run`` starts it, with the
settings a benchmark needs that the run command does not expose (worker threads, demo size)
and some it does (the cap of active exports, the scheduling).

Test hooks follow the one rule of the project: on only when ``CELLHUB_TEST_HOOKS=1``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from server.cli import UVICORN_OPTIONS
    from server.web import Settings, create_app

    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--demo-images", type=int, default=Settings.demo_images)
    parser.add_argument("--demo-size", type=int, default=Settings.demo_size)
    parser.add_argument("--behind-proxy", help="trusted proxy addresses, comma-separated (as the run command)")
    parser.add_argument("--max-active-exports-per-user", type=int, default=Settings.max_active_exports_per_user)
    parser.add_argument("--scheduling", choices=("round-robin", "fifo"), default="round-robin")
    args = parser.parse_args(argv)
    settings = Settings(
        data_dir=Path(args.data_dir),
        test_hooks=os.environ.get("CELLHUB_TEST_HOOKS") == "1",
        workers=args.workers,
        demo_images=args.demo_images,
        demo_size=args.demo_size,
        behind_proxy=args.behind_proxy.split(",") if args.behind_proxy else None,
        max_active_exports_per_user=args.max_active_exports_per_user,
        round_robin=args.scheduling == "round-robin",
    )
    app = create_app(settings)
    # The same server options as ``server.cli.cmd_run``.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", **UVICORN_OPTIONS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
