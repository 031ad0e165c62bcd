"""Alembic's environment for every history: it runs on the connection ``migrate`` hands it.

There is no ``alembic.ini`` and no URL here: ``backend.migrations`` opens the component's
database, takes its lock, and passes the connection (already in a transaction, its
search_path the component's schema on PostgreSQL) in ``config.attributes``, with the models'
metadata when autogenerate compares.
"""

from __future__ import annotations

from alembic import context

attributes = context.config.attributes
context.configure(
    connection=attributes["connection"],
    target_metadata=attributes.get("metadata"),
    render_as_batch=True,  # SQLite alters a table by copying it: autogenerate writes that way
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
