-- GET /tasks pages a tenant's tasks newest first with a keyset cursor (created_at, id): served by
-- this index whatever the table's size (filters on type and priority are checked on its rows).
-- Like every index on `tasks` it costs each insert and each status change a little: one, not one
-- per filter. On a big existing table build it first with CREATE INDEX CONCURRENTLY under the
-- same name (a migration runs in a transaction, which CONCURRENTLY cannot).
CREATE INDEX IF NOT EXISTS tasks_tenant_created_idx ON tasks (tenant, created_at DESC, id DESC);

-- Dead and cancelled tasks, what operators look for and redrive: few, and rows only enter it when
-- a task ends that way, so the hot path rarely pays for it.
CREATE INDEX IF NOT EXISTS tasks_tenant_failed_idx ON tasks (tenant, created_at DESC, id DESC)
  WHERE status IN ('dead', 'cancelled');
