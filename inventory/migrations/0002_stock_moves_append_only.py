"""On PostgreSQL, the database itself refuses to change or delete a stock move.

The model and its queryset refuse too; this trigger also stops raw SQL and other
clients. TRUNCATE (used to reset test databases) is a separate statement and not
affected. SQLite (the embedded demo) relies on the model-level guard.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION inventory_stockmove_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'stock moves are append-only (% refused)', TG_OP USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_stockmove_append_only
    BEFORE UPDATE OR DELETE ON inventory_stockmove
    FOR EACH ROW EXECUTE FUNCTION inventory_stockmove_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS inventory_stockmove_append_only ON inventory_stockmove;
DROP FUNCTION IF EXISTS inventory_stockmove_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
