"""Failed logins counted in the database, so that replicas sharing a PostgreSQL database
share the failed-login limit (SQLite, one host, keeps counting in shared memory).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_logins",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_failed_logins"),
    )
    op.create_index("ix_failed_logins_bucket_failed_at", "failed_logins", ["bucket", "failed_at"])


def downgrade() -> None:
    op.drop_index("ix_failed_logins_bucket_failed_at", table_name="failed_logins")
    op.drop_table("failed_logins")
