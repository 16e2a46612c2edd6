"""usage_daily: usage records summed per UTC day, project, model and API key, kept by triggers (issue 14)

Revision ID: 0039_usage_daily
Revises: 0038_application_origin_index
Create Date: 2026-12-04

The usage page and ``/usage.csv`` read this roll-up instead of summing the records of their period
(up to 90 days of a busy project's records per request). The database keeps it in step with
``usage_records`` whoever writes there (the gateway's usage writer with COPY or INSERT ... SELECT,
SQLite's multi-row INSERTs, the ORM, a bulk load, an operator by hand):

- PostgreSQL: statement-level triggers with transition tables. An INSERT (COPY included) adds its rows
  with one aggregated INSERT ... ON CONFLICT DO UPDATE, in key order, so that two gateway processes
  flushing at once lock the rows they share in the same order (no deadlock); a DELETE locks the groups
  it touches in the same order, then subtracts its rows and removes the groups left empty; an UPDATE
  does both; a TRUNCATE empties the roll-up.
- SQLite (no statement-level triggers): the same per row, with UPSERT.

Existing records are summed into the table here. ``api_key_id`` is ``''`` (not NULL) for requests made
without a key, so that it can be part of the primary key.

SQLite rebuilds a table to alter it (batch_alter_table): a later migration that does so to usage_records
loses these triggers with the old table and must create them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0039_usage_daily"
down_revision = "0038_application_origin_index"
branch_labels = None
depends_on = None

KEYS = "project_id, day, model, api_key_id"
SUMS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


def _grouped(source: str, day: str) -> str:
    """The rows of ``source`` (usage_records' columns) summed per roll-up key, in key order."""
    return (
        f"SELECT project_id, {day} AS day, model, coalesce(api_key_id, '') AS api_key_id, count(*) AS requests, "
        "coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens, "
        f"coalesce(sum(total_tokens), 0) AS total_tokens FROM {source} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )


PG_DAY = "(created_at AT TIME ZONE 'UTC')::date"
PG_ADD = (
    f"INSERT INTO usage_daily AS d ({KEYS}, {', '.join(SUMS)}) {_grouped('usage_new', PG_DAY)} "
    f"ON CONFLICT ({KEYS}) DO UPDATE SET " + ", ".join(f"{c} = d.{c} + excluded.{c}" for c in SUMS)
)
PG_SUBTRACT = (
    "UPDATE usage_daily AS d SET " + ", ".join(f"{c} = d.{c} - o.{c}" for c in SUMS)
    + f" FROM ({_grouped('usage_old', PG_DAY)}) AS o "
    "WHERE (d.project_id, d.day, d.model, d.api_key_id) = (o.project_id, o.day, o.model, o.api_key_id)"
)
PG_LOCK_OLD = (  # the rows a DELETE or UPDATE changes, locked in key order first, as flushes lock theirs
    "PERFORM 1 FROM usage_daily AS d JOIN (SELECT DISTINCT project_id, " + PG_DAY + " AS day, model, "
    "coalesce(api_key_id, '') AS api_key_id FROM usage_old) AS o "
    "ON (d.project_id, d.day, d.model, d.api_key_id) = (o.project_id, o.day, o.model, o.api_key_id) "
    "ORDER BY d.project_id, d.day, d.model, d.api_key_id FOR UPDATE OF d"
)
PG_DROP_EMPTY = (
    f"DELETE FROM usage_daily AS d USING (SELECT DISTINCT project_id, {PG_DAY} AS day, model, "
    "coalesce(api_key_id, '') AS api_key_id FROM usage_old) AS o "
    "WHERE (d.project_id, d.day, d.model, d.api_key_id) = (o.project_id, o.day, o.model, o.api_key_id) "
    "AND d.requests <= 0"
)
PG_FUNCTIONS = [
    f"""CREATE FUNCTION usage_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {PG_LOCK_OLD};
        {PG_SUBTRACT};
        {PG_DROP_EMPTY};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {PG_ADD};
    END IF;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION usage_daily_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE usage_daily;
    RETURN NULL;
END $$""",
]
# PostgreSQL allows transition tables only on a trigger with one event: one trigger per event.
PG_TRIGGERS = [
    "CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_records REFERENCING NEW TABLE AS usage_new "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    "CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_records REFERENCING OLD TABLE AS usage_old "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    "CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_records REFERENCING OLD TABLE AS usage_old "
    "NEW TABLE AS usage_new FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    "CREATE TRIGGER usage_daily_truncate AFTER TRUNCATE ON usage_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_truncate()",
]

_SQLITE_ADD = (
    f"INSERT INTO usage_daily ({KEYS}, {', '.join(SUMS)}) VALUES (NEW.project_id, date(NEW.created_at), NEW.model, "
    "coalesce(NEW.api_key_id, ''), 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.total_tokens) "
    f"ON CONFLICT ({KEYS}) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in SUMS) + ";"
)
_SQLITE_OLD = ("project_id = OLD.project_id AND day = date(OLD.created_at) AND model = OLD.model "
               "AND api_key_id = coalesce(OLD.api_key_id, '')")
_SQLITE_SUBTRACT = (
    "UPDATE usage_daily SET requests = requests - 1, "
    + ", ".join(f"{c} = {c} - OLD.{c}" for c in SUMS[1:]) + f" WHERE {_SQLITE_OLD};"
    f" DELETE FROM usage_daily WHERE {_SQLITE_OLD} AND requests <= 0;"
)
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_records BEGIN {_SQLITE_ADD} END",
    f"CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_records BEGIN {_SQLITE_SUBTRACT} END",
    f"CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_records BEGIN {_SQLITE_SUBTRACT} {_SQLITE_ADD} END",
]


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "day", "model", "api_key_id", name=op.f("pk_usage_daily")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    day = PG_DAY if postgresql else "date(created_at)"
    # Triggers first, backfill next, in this one transaction: no record is missed or counted twice.
    for statement in (PG_FUNCTIONS + PG_TRIGGERS) if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(f"INSERT INTO usage_daily ({KEYS}, {', '.join(SUMS)}) {_grouped('usage_records', day)}")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in ("insert", "delete", "update", "truncate") if postgresql else ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER usage_daily_{name}" + (" ON usage_records" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION usage_daily_apply()")
        op.execute("DROP FUNCTION usage_daily_truncate()")
    op.drop_table("usage_daily")
