"""A submission's model tarball, and the run of a phase's evaluation container over it

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("model", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("model_digest", sa.String(100), nullable=True))
        batch.add_column(sa.Column("evaluation_state", sa.String(20), nullable=True))
        batch.add_column(sa.Column("evaluation_detail", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("evaluation_log", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("metrics_json", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for column in ("metrics_json", "evaluation_log", "evaluation_detail", "evaluation_state", "model_digest",
                       "model"):
            batch.drop_column(column)
