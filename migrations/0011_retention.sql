-- Retention (services/core/retention, docs/retention.md): the worker deletes final tasks, with
-- their runs, some time after they finished, in short batches.
--
-- The batches find their tasks by status and finish time. The indexes by (tenant, created_at) do
-- not serve that: they mix the final statuses, so a walk for old succeeded tasks would read, on
-- every pass, each dead or cancelled task still inside its longer retention (with 1 % of 10k
-- tasks/s dying, 200 million rows). A task's row enters this index once, when it ends (the final
-- version; the versions before are unfinished and skip it): one index entry per task, not one per
-- status change. On a big table, build it first with CREATE INDEX CONCURRENTLY under this name.
CREATE INDEX IF NOT EXISTS tasks_final_finished_idx ON tasks (status, finished_at)
  WHERE status IN ('succeeded', 'dead', 'cancelled');

-- A key's task is deleted by retention only once the key has expired (a live key keeps its task,
-- so a replay within IDEMPOTENCY_TTL_MS still answers with it), and expired keys are deleted by the
-- key pruner. The foreign key's ON DELETE CASCADE ran, for every deleted task, a search of
-- idempotency_keys by task_id, which no index serves: a sequential scan per task (a batch of 1,000
-- tasks among 50,000 keys: 4.3–5.2 s instead of 5–9 ms, scripts/bench/retention.ts). It also cost
-- every keyed submission a check at commit.
-- Without it a key can outlive its task when a task is deleted by hand; a replay then creates a
-- new task (the replay frees such a key and claims it again; services/core/tasks/task-store.ts).
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_task_id_fkey;
