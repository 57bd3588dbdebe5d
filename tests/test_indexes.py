"""No index that another one already covers: each costs a new entry for every row written
(and, on the orders, every status change), so an index whose columns lead another index
of the same table serves no query the longer one does not (docs/performance.md, sixth
session). Django adds one to every foreign key column unless told not to
(``db_index=False``)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

# Each plain (non-unique, unpredicated, key-only) btree index of our tables, with the
# indexes of the same table whose leading columns are its columns, in the same order.
_COVERED = """
WITH idx AS (
  SELECT i.indexrelid, i.indrelid, c.relname AS name, t.relname AS tbl,
         -- int2vector / oidvector as 1-based text arrays, key columns only (no INCLUDE)
         (string_to_array(i.indkey::text, ' '))[1:i.indnkeyatts] AS keys,
         (string_to_array(i.indclass::text, ' '))[1:i.indnkeyatts] AS classes,
         (string_to_array(i.indoption::text, ' '))[1:i.indnkeyatts] AS options,
         i.indisunique AS uniq, i.indpred IS NULL AND i.indexprs IS NULL AS plain
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am a ON a.oid = c.relam
  WHERE n.nspname = current_schema() AND t.relname LIKE 'core\\_%%' AND a.amname = 'btree'
    -- Django's own many-to-many tables of the user model (auth's groups, permissions)
    AND t.relname NOT IN ('core_user_groups', 'core_user_user_permissions')
)
SELECT a.tbl, a.name, b.name
FROM idx a JOIN idx b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
WHERE a.plain AND NOT a.uniq AND b.plain
  AND cardinality(b.keys) >= cardinality(a.keys)
  AND b.keys[1:cardinality(a.keys)] = a.keys
  AND b.classes[1:cardinality(a.keys)] = a.classes
  AND b.options[1:cardinality(a.keys)] = a.options
ORDER BY 1, 2
"""


def test_no_index_is_covered_by_another() -> None:
    with connection.cursor() as cursor:
        cursor.execute(_COVERED)
        covered = cursor.fetchall()
    assert covered == [], covered


def test_order_number_is_unique_by_one_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'core_order' "
            "AND indexdef LIKE '%%(number%%'"
        )
        assert [name for (name,) in cursor.fetchall()] == ["order_number_uniq"]
