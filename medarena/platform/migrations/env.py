"""Alembic environment: runs the migrations on the URL the platform passes in."""

from alembic import context
from sqlalchemy import create_engine

from medarena.platform.database import Base

url = context.config.get_main_option("sqlalchemy.url")
connectable = context.config.attributes.get("connection") or create_engine(url)

if hasattr(connectable, "connect"):
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connectable, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
