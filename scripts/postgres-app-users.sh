#!/bin/sh
# Creates (or updates) the Postgres logins of the api and the worker: task_scheduler_api and
# task_scheduler_worker, each with its own password, members of task_scheduler_app, the role that
# migration 0006 gives read and write rights on the rows and nothing else (the migrator, logged in
# as the schema's owner, creates it too; whichever runs first). Idempotent: run it again to change
# the passwords.
#
# Connection: the PG* variables (PGHOST, PGUSER, PGPASSWORD, PGDATABASE) of a user allowed to
# create roles, or, as an init script of the postgres image (/docker-entrypoint-initdb.d), its
# POSTGRES_USER and POSTGRES_DB. Passwords: API_DB_PASSWORD and WORKER_DB_PASSWORD.
# Used by docker-compose (the postgres-users service) and the dev chart (the in-cluster Postgres);
# docs/security.md shows the same SQL for a production database.
set -eu
: "${API_DB_PASSWORD:?set API_DB_PASSWORD}" "${WORKER_DB_PASSWORD:?set WORKER_DB_PASSWORD}"
psql -X -q -v ON_ERROR_STOP=1 \
  --username "${PGUSER:-${POSTGRES_USER:-postgres}}" --dbname "${PGDATABASE:-${POSTGRES_DB:-postgres}}" \
  -v api_password="$API_DB_PASSWORD" -v worker_password="$WORKER_DB_PASSWORD" <<'SQL'
-- A role created meanwhile (the migrator's migration 0006 runs beside this under docker-compose)
-- is one that exists: not an error.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['task_scheduler_app', 'task_scheduler_api', 'task_scheduler_worker'] LOOP
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
END
$$;
ALTER ROLE task_scheduler_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'api_password';
ALTER ROLE task_scheduler_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'worker_password';
GRANT task_scheduler_app TO task_scheduler_api, task_scheduler_worker;
SQL
