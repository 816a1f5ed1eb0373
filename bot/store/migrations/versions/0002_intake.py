"""intake: alert groups, repeats, flapping, alert storms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_opened_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("pipelines", sa.JSON(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("update_outbox_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_storms_active_channel",
        "storms",
        ["channel"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("group_key", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True)
        )
        batch_op.add_column(sa.Column("truncated_alerts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_alert_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("last_alert_key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )
        batch_op.add_column(sa.Column("root_channel", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("root_update_outbox_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("message_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("alert_resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("storm_id", sa.Integer(), nullable=True))
    op.create_index("ix_incidents_root_channel_opened", "incidents", ["root_channel", "opened_at"])
    op.create_index(
        "uq_incidents_open_fingerprint",
        "incidents",
        ["fingerprint"],
        unique=True,
        sqlite_where=sa.text("status != 'resolved'"),
        postgresql_where=sa.text("status != 'resolved'"),
    )


def downgrade() -> None:
    op.drop_index("uq_incidents_open_fingerprint", table_name="incidents")
    op.drop_index("ix_incidents_root_channel_opened", table_name="incidents")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for column in (
            "storm_id",
            "alert_resolved_at",
            "reopened_count",
            "message_updated_at",
            "root_update_outbox_id",
            "root_channel",
            "last_alert_key",
            "last_alert_at",
            "truncated_alerts",
            "group_key",
        ):
            batch_op.drop_column(column)
    op.drop_index("uq_storms_active_channel", table_name="storms")
    op.drop_table("storms")
