"""Alembic environment: runs the migrations on the connection the platform passes in."""

from alembic import context
from sqlalchemy import create_engine

from medarena.platform.database import Base

connection = context.config.attributes.get("connection")
url = context.config.get_main_option("sqlalchemy.url")


def run(conn) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # the alembic command line
    with create_engine(url).connect() as conn:
        run(conn)
