"""Alembic environment: runs on the connection the service hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from signer.registry.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line: take the URL from alembic.ini / -x url=
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)  # type: ignore[arg-type]
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
