"""Alembic environment: runs on the connection monitor.store.db.migrate passes in."""

from alembic import context

from monitor.store.tables import Base, declared

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic revision --autogenerate` from a shell
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///autogen.db"
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=Base.metadata, include_name=declared,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
