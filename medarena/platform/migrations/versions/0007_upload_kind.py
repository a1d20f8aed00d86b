"""What an upload holds (an algorithm image or a model tarball); indexes for reading a
submission's jobs, their metrics and a phase's leaderboard

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
INDEXED = (("jobs", "submission_id"), ("metric_values", "job_id"), ("leaderboard_entries", "phase_id"))


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="image"))
    for table, column in INDEXED:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in INDEXED:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("kind")
