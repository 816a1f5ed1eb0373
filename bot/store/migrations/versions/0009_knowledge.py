"""knowledge: what Claude found and drafted for an incident, the tokens each incident cost, and every
resolution kept for the next similar incident (full-text searchable: FTS5 on SQLite, a tsvector on
PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("investigation", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "llm_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("purpose", _TEXT(length=32), nullable=False),
        sa.Column("model", _TEXT(length=128), nullable=False),
        sa.Column("outcome", _TEXT(length=32), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_input_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_creation_input_tokens", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_llm_usage_incident_id", "llm_usage", ["incident_id"])
    op.create_index("ix_llm_usage_at", "llm_usage", ["at"])
    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("category", _TEXT(length=40), nullable=False),
        sa.Column("pipeline", _TEXT(length=255), nullable=True),
        sa.Column("target_key", _TEXT(length=512), nullable=True),
        sa.Column("title", _TEXT(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("level", _TEXT(length=4), nullable=False),
        sa.Column("fix", _TEXT(length=80), nullable=True),
        sa.Column("fix_summary", _TEXT(), nullable=False, server_default=""),
        sa.Column("decision", _TEXT(), nullable=True),
        sa.Column("note", _TEXT(), nullable=False, server_default=""),
        sa.Column("resolved_by", _TEXT(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
        sa.Column("body", _TEXT(), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_resolutions_incident_id", "resolutions", ["incident_id"])
    op.create_index("ix_resolutions_target_key", "resolutions", ["target_key"])
    op.create_index("ix_resolutions_pipeline", "resolutions", ["pipeline"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE resolutions ADD COLUMN search tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', coalesce(title, '') || ' ' || coalesce(body, ''))) STORED"
        )
        op.execute("CREATE INDEX ix_resolutions_search ON resolutions USING gin (search)")
    else:
        for ddl in _SQLITE_FTS:
            try:
                op.execute(ddl)
            except sa.exc.OperationalError as exc:  # a Python built without FTS5: search falls back to LIKE
                if "fts5" not in str(exc):
                    raise
                break


_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE resolutions_fts USING fts5(title, body, content='resolutions', "
    "content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER resolutions_fts_insert AFTER INSERT ON resolutions BEGIN "
    "INSERT INTO resolutions_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER resolutions_fts_delete AFTER DELETE ON resolutions BEGIN "
    "INSERT INTO resolutions_fts(resolutions_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER resolutions_fts_update AFTER UPDATE ON resolutions BEGIN "
    "INSERT INTO resolutions_fts(resolutions_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO resolutions_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in ("resolutions_fts_update", "resolutions_fts_delete", "resolutions_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS resolutions_fts")
    op.drop_table("resolutions")
    op.drop_table("llm_usage")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("investigation")
