"""Text columns for strings that come from people and files (no length limit on PostgreSQL)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = {
    "challenges": [("source_path", sa.String(1000))],
    "cases": [("name", sa.String(200))],
    "submissions": [("participant", sa.String(200)), ("image", sa.String(500))],
    "metric_values": [("label", sa.String(100)), ("metric", sa.String(100))],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, old in columns:
                batch.alter_column(name, type_=sa.Text(), existing_type=old)


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, old in columns:
                batch.alter_column(name, type_=old, existing_type=sa.Text())
