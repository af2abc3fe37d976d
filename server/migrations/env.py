"""Alembic's environment. Online: migrations run on the connection ``server.migrate`` hands
over (``config.attributes["connection"]``, already inside its write transaction), never on a
URL of their own, so the server, the CLI and the tests migrate exactly the database they
use. Offline (``config.attributes["dialect"]``, e.g. ``"postgresql"``): the SQL is written to
``config.attributes["output"]`` instead, as for an empty database of that dialect."""
from alembic import context

from server.schema import metadata

attributes = context.config.attributes
if "connection" in attributes:
    context.configure(connection=attributes["connection"], target_metadata=metadata)
else:
    context.configure(dialect_name=attributes["dialect"], as_sql=True, output_buffer=attributes["output"],
                      target_metadata=metadata, literal_binds=True)
with context.begin_transaction():
    context.run_migrations()
