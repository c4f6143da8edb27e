"""Alembic environment: the engine comes from podrec's Store, never from an ini file."""

from alembic import context

from podrec.storage.schema import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    context.run_migrations()
