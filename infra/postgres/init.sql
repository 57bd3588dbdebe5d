-- Runs once, when the postgres container initialises an empty data volume
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d/). The database and its
-- owner (POSTGRES_DB / POSTGRES_USER, both "lokaly") exist already; the schema comes from
-- the Django migrations, which the servers and the worker apply on start.

-- Timestamps are stored and compared in UTC (Django's USE_TZ = True does the same).
ALTER DATABASE lokaly SET timezone TO 'UTC';

-- A transaction left open and idle (a bug, or a stuck process) holds row locks on stock
-- and orders; end it after a minute rather than let it block the worker.
ALTER DATABASE lokaly SET idle_in_transaction_session_timeout TO '60s';

-- Query statistics (shared_preload_libraries=pg_stat_statements is set in
-- docker-compose.yml): SELECT * FROM pg_stat_statements ORDER BY total_exec_time DESC;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
