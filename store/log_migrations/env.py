"""Alembic's entry point: run the migrations on the connection `upgrade` passes in (never a URL of its
own, so the log's engine, its options and its lock are the ones used)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
