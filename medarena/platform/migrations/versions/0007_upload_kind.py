"""What an upload holds: an algorithm image or a model tarball

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="image"))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("kind")
