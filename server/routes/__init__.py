"""The service's routes, one router per concern (``server.web.create_app`` includes them):
``pages`` (the page and its 404), ``runtime`` (app zip, bytecode, static files),
``snapshot`` (the boot module and the memory snapshot), ``session`` (sign-in), ``projects``,
``members``, ``exports``, ``ws`` (the WebSocket). They reach the service's parts
through ``deps`` and keep SQL in the store modules (``server.project_store``,
``server.jobs.JobStore``, ``server.accounts``)."""
