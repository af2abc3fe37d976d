"""The HTTP + WebSocket service (FastAPI): ``create_app`` wires the parts and the routers.

``create_app(settings)`` builds one app over one data directory (``server.services``); the
routes live in ``server.routes`` (one router per concern). Errors are JSON
``{"detail": ...}``; validation errors are 422 naming the field and the reason (R8). The
guards against hostile input (``server.guard``) wrap every route: bounded bodies, the Host
check, security headers; ``/openapi.json`` needs a session and there are no docs pages.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.guard.api_schema import add_private_schema
from server.guard.wiring import add_guards
from server.maintenance import expiry_loop, recover_jobs
from server.routes import exports, members, pages, projects, runtime, session, snapshot, tokens, ws
from server.routes.errors import add_error_handlers
from server.services import Services, open_services
from server.settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app over ``settings.data_dir`` (created and migrated if needed)."""
    svc = open_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.hub.bind(asyncio.get_running_loop())
        if svc.cluster is not None:  # a cluster replica: listener, reconciler, expiry (issue 20)
            async with svc.cluster.running():
                yield
            return
        recover_jobs(svc.store, svc.runner)
        stop = asyncio.Event()
        expiry = asyncio.create_task(expiry_loop(svc.store, settings.archive_ttl_seconds, stop))
        try:
            yield
        finally:
            stop.set()
            expiry.cancel()
            await asyncio.get_running_loop().run_in_executor(None, svc.runner.shutdown)
            svc.signin.close()
            svc.db.dispose()

    app = FastAPI(title="Cell segmentation hub: export", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)  # schema: server.guard.api_schema
    add_guards(app, settings)
    add_private_schema(app)
    _expose(app, svc)
    if settings.seed_demo:
        from server.projects import seed_demo_if_empty

        seed_demo_if_empty(svc.db, svc.files_root, n_images=settings.demo_images, size=settings.demo_size)

    add_error_handlers(app)
    for module in (pages, runtime, snapshot, session, projects, members, exports, tokens, ws):
        app.include_router(module.router)
    runtime.mount_static(app)

    from server.imports.api import add_import_routes

    add_import_routes(app)
    if svc.hooks is not None:
        from server.test_hooks import add_test_routes

        add_test_routes(app, svc.hooks, svc.hub, svc.runner)
    return app


def _expose(app: FastAPI, svc: Services) -> None:
    """``app.state.services``, and each part by its own name (the import API, the test hooks
    and the tests reach them there)."""
    app.state.services = svc
    app.state.settings = svc.settings
    app.state.db = svc.db
    app.state.store = svc.store
    app.state.runner = svc.runner
    app.state.hub = svc.hub
    app.state.hooks = svc.hooks
    app.state.files_root = svc.files_root
    app.state.signin = svc.signin
