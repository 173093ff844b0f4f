-- The migrator owns the schema; the api, the worker and the CLI need only to read and write rows.
-- They log in as users that are members of task_scheduler_app (created by the operator, see
-- docs/security.md), which may SELECT, INSERT, UPDATE and DELETE the tables and nothing else: a
-- compromised api or worker cannot drop, alter, truncate or create tables, nor rewrite the record
-- of applied migrations.
--
-- Roles belong to the whole Postgres cluster, not to this database: the role may exist already
-- (created by the operator ahead of a migrator without CREATEROLE, or by another database's
-- migration, possibly at this very moment).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'task_scheduler_app') THEN
    CREATE ROLE task_scheduler_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO task_scheduler_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO task_scheduler_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO task_scheduler_app;
-- Pods wait for the schema version (cdk8s/wait-for-schema.js) with their own credentials.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM task_scheduler_app;

-- Tables and sequences later migrations create (as the same migrating user) get the same rights.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO task_scheduler_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO task_scheduler_app;

-- Before Postgres 15 every user may create objects in the public schema; nobody but the owner
-- should here. (A no-op, with a warning at most, where that right is already gone.)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- ANALYZE needs the table's owner, or (Postgres 17+) the MAINTAIN privilege. With it the worker's
-- stats refresher keeps re-planning the hot statements as the tables grow (see
-- services/worker/stats-refresher.ts); without it, autovacuum's ANALYZE does, up to
-- autovacuum_naptime (1 min) later. MAINTAIN also allows VACUUM, CLUSTER, REINDEX, REFRESH
-- MATERIALIZED VIEW and LOCK TABLE, none of which changes what the tables hold.
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 170000 THEN
    EXECUTE 'GRANT MAINTAIN ON tasks, task_runs, idempotency_keys TO task_scheduler_app';
  END IF;
END
$$;
