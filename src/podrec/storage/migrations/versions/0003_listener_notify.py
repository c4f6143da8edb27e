"""PostgreSQL: announce changes to listeners on the channel ``podrec_listeners``.

Whoever writes (a server worker, `podrec ingest`, another tool), the database itself sends
one notification per changed listener and statement, with the payload
``<person id or empty>/<user id>``: after events are inserted or deleted, and after a
listener is linked, unlinked or deleted. Servers with ``server.cache_sync = "notify"`` drop
the lists they keep for that listener (and the rest of their person) when it arrives.
SQLite has no such channel; this revision changes nothing there.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHANNEL = "podrec_listeners"

UPGRADE = [
    f"""
    CREATE OR REPLACE FUNCTION podrec_notify_events_inserted() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', coalesce(u.person_id, '') || '/' || n.user_id)
        FROM (SELECT DISTINCT user_id FROM changed_events) AS n
        LEFT JOIN users AS u ON u.id = n.user_id;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER podrec_events_inserted AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION podrec_notify_events_inserted()
    """,
    """
    CREATE TRIGGER podrec_events_deleted AFTER DELETE ON events
    REFERENCING OLD TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION podrec_notify_events_inserted()
    """,
    f"""
    CREATE OR REPLACE FUNCTION podrec_notify_user_changed() RETURNS trigger AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            PERFORM pg_notify('{CHANNEL}', coalesce(OLD.person_id, '') || '/' || OLD.id);
        END IF;
        IF TG_OP = 'UPDATE' THEN
            PERFORM pg_notify('{CHANNEL}', coalesce(NEW.person_id, '') || '/' || NEW.id);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER podrec_user_changed AFTER UPDATE OF person_id OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION podrec_notify_user_changed()
    """,
]

DOWNGRADE = [
    "DROP TRIGGER IF EXISTS podrec_user_changed ON users",
    "DROP TRIGGER IF EXISTS podrec_events_deleted ON events",
    "DROP TRIGGER IF EXISTS podrec_events_inserted ON events",
    "DROP FUNCTION IF EXISTS podrec_notify_user_changed()",
    "DROP FUNCTION IF EXISTS podrec_notify_events_inserted()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in DOWNGRADE:
            op.execute(statement)
