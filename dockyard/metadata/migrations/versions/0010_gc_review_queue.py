"""The garbage collector's review queue of blobs (gc_blob_reviews): the digests of blobs
that no manifest references, kept by triggers, so that a collection reads the queue
instead of every blob of the store.

A blob enters the queue when its row is created (it may never be referenced) and when a
manifest reference to it is deleted (its manifest went); it leaves when a manifest
references it and when its row is deleted. Triggers keep it so on every path that writes
those tables (pushes, imports, deletes, retention, cascades), in the writing transaction.
The queue is filled for an existing store here: every blob no manifest references.

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (name, table, event, the row's digest, a condition on the row, the statement's job)
_TRIGGERS = (
    ("gc_blob_created", "blobs", "INSERT", "NEW.digest", None, "queue"),
    ("gc_blob_deleted", "blobs", "DELETE", "OLD.digest", None, "unqueue"),
    ("gc_blob_referenced", "manifest_references", "INSERT", "NEW.digest", "NEW", "unqueue"),
    ("gc_blob_unreferenced", "manifest_references", "DELETE", "OLD.digest", "OLD", "queue"),
)

_BACKFILL = """
INSERT INTO gc_blob_reviews (digest)
SELECT b.digest FROM blobs b
WHERE NOT EXISTS (
    SELECT 1 FROM manifest_references r WHERE r.digest = b.digest AND r.kind = 'blob'
)
"""


def _statement(job: str, digest: str, dialect: str) -> str:
    if job == "unqueue":
        return f"DELETE FROM gc_blob_reviews WHERE digest = {digest}"
    # Only a blob that has a row: a reference can outlive nothing, but stay exact.
    source = f"SELECT {digest} WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = {digest})"
    if dialect == "postgresql":
        # DO UPDATE (not DO NOTHING) takes the row lock: a collector that holds the row
        # (reviewing it as referenced) is waited for, so its delete cannot drop this entry.
        return (
            f"INSERT INTO gc_blob_reviews (digest) {source} "
            "ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest"
        )
    return f"INSERT OR IGNORE INTO gc_blob_reviews (digest) {source}"


def _create_triggers(dialect: str) -> None:
    for name, table, event, digest, row, job in _TRIGGERS:
        when = f"{row}.kind = 'blob'" if row else None
        statement = _statement(job, digest, dialect)
        if dialect == "postgresql":
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {statement}; RETURN NULL; END $$"
            )
            condition = f" WHEN ({when})" if when else ""
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{condition} "
                f"EXECUTE FUNCTION {name}()"
            )
        else:
            condition = f" WHEN {when}" if when else ""
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{condition} "
                f"BEGIN {statement}; END"
            )


def upgrade() -> None:
    op.create_table(
        "gc_blob_reviews",
        sa.Column("digest", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_gc_blob_reviews"),
    )
    _create_triggers(op.get_bind().dialect.name)
    op.execute(_BACKFILL)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("gc_blob_reviews")
