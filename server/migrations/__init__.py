"""Alembic migrations of the schema in ``server/schema.py`` (run by ``server.migrate``)."""
