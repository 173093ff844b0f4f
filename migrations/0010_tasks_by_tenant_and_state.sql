-- Every status change writes a new version of the task's row, and (no update of `tasks` can be HOT:
-- the status is indexed) one entry in each index whose predicate that version meets. A full index
-- on (tenant, created_at, id) took an entry for every version: the insert, the start and the end
-- of every attempt (+20 % Postgres CPU in the drain benchmark). These two partial indexes serve
-- the same reads, and a task's versions enter only one of them each: the unfinished ones the
-- first, the final one the second, which also replaces tasks_unfinished_idx (status, updated_at)
-- for the reconciler (it walks unfinished tasks by tenant and creation time instead).
-- On a big table, build them first with CREATE INDEX CONCURRENTLY under the same names.
CREATE INDEX IF NOT EXISTS tasks_tenant_unfinished_idx ON tasks (tenant, created_at, id)
  WHERE status IN ('queued', 'running', 'retrying');
CREATE INDEX IF NOT EXISTS tasks_tenant_finished_idx ON tasks (tenant, created_at, id)
  WHERE status IN ('succeeded', 'dead', 'cancelled');
DROP INDEX IF EXISTS tasks_tenant_created_idx;
DROP INDEX IF EXISTS tasks_unfinished_idx;
