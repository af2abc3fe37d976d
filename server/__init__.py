"""The export service: HTTP + WebSocket API, job runner, archive writers, storage, CLI."""
