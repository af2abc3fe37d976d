"""What stands between hostile input and the service: one idea per module.

- ``json_bounds``: JSON parsed with bounds (finite numbers in float range, integers of at
  most 20 digits, nesting of at most 64 levels); refusals name the field.
- ``bodies``: ASGI middleware, request bodies bounded before anything parses them.
- ``hosts``: ASGI middleware, the Host header must name this server (``--allowed-hosts``).
- ``headers``: ASGI middleware, security headers on every response (CSP with a nonce).
- ``origin``: the same-origin rule of state changes (scheme, host and port).
- ``signin``: sign-in throttling, the same work for unknown names, bounded parallel checks.
- ``next_path``: where the sign-in page may send the browser afterwards.
- ``private_files``: the data folder 0700 and its files 0600 whatever the umask.
- ``api_schema``: ``/openapi.json`` for signed-in users only, no CDN-backed docs pages.
- ``wiring``: ``add_guards(app, settings)``, the middleware above in their order.

Every bound and its reason: ``server/DECISIONS.md`` ("Hostile input") and README.md.
"""
