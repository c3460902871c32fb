"""On PostgreSQL, refuse UPDATE and DELETE on the ledger table at the database, whoever connects.

TRUNCATE is deliberately not refused: pytest-django's transactional tests flush tables with TRUNCATE, and a
TRUNCATE needs table ownership anyway (which could equally drop the trigger). SQLite has no such trigger: the
embedded default is a single-user laptop database, where the chain's hashes remain the protection.
"""

from django.db import migrations

CREATE_SQL = """
CREATE OR REPLACE FUNCTION audits_decisionevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the decision ledger is append-only: % on audits_decisionevent is refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER audits_decisionevent_append_only
    BEFORE UPDATE OR DELETE ON audits_decisionevent
    FOR EACH ROW EXECUTE FUNCTION audits_decisionevent_refuse_change();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS audits_decisionevent_append_only ON audits_decisionevent;
DROP FUNCTION IF EXISTS audits_decisionevent_refuse_change();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("audits", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
