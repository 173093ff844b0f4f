-- A worker's batch of step successes, applied set-wise, answers with the steps it queued: the
-- worker reads them in the same statement instead of a query of its own after it, one round trip
-- less on every step of a chain. PL/pgSQL keeps each statement's plan for the session, where a
-- multi-statement SQL function is planned again on every call.

CREATE OR REPLACE FUNCTION workflow_counted(wf uuid, du integer, df integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE workflows w SET
         unfinished = w.unfinished + du,
         failed = w.failed + df,
         cancel_requested_at = CASE WHEN du > 0 THEN NULL ELSE w.cancel_requested_at END,
         status = CASE WHEN w.unfinished + du > 0 THEN 'running'
                       WHEN w.cancel_requested_at IS NOT NULL THEN 'cancelled'
                       WHEN w.failed + df > 0 THEN 'failed' ELSE 'succeeded' END,
         finished_at = CASE WHEN w.unfinished + du > 0 THEN NULL ELSE COALESCE(w.finished_at, now()) END,
         reported = CASE WHEN w.unfinished + du > 0 THEN false ELSE w.reported END,
         updated_at = now()
   WHERE w.id = wf;
END;
$$;

-- The successes `ids` count down their dependents; those whose last dependency this was are queued
-- and returned (as written). Locks: dependents, then workflows, each by id (tasks before their
-- workflow, as everywhere). ROWS: most successes release a step or none; the default estimate of
-- 1,000 rows priced the caller's per-step subquery past jit_above_cost, and JIT compiling took
-- longer (25 ms) than the whole statement.
CREATE OR REPLACE FUNCTION workflow_steps_released(ids uuid[]) RETURNS SETOF tasks
LANGUAGE plpgsql ROWS 10 SET enable_seqscan = off AS $$
DECLARE
  queued uuid[];
BEGIN
  PERFORM 1 FROM tasks WHERE id IN (SELECT child FROM workflow_edges WHERE parent = ANY(ids)) AND status::text = 'waiting' ORDER BY id FOR UPDATE;
  WITH counted AS (
    UPDATE tasks c SET deps_waiting = c.deps_waiting - x.k,
           status = CASE WHEN c.deps_waiting - x.k <= 0 THEN 'queued'::task_status ELSE c.status END, updated_at = now()
      FROM (SELECT child, count(*)::int AS k FROM workflow_edges WHERE parent = ANY(ids) GROUP BY child) x
     WHERE c.id = x.child AND c.status::text = 'waiting'
    RETURNING c.id, c.status::text = 'queued' AS queued)
  SELECT array_agg(id) FILTER (WHERE counted.queued) INTO queued FROM counted;
  PERFORM 1 FROM workflows WHERE id IN (SELECT workflow_id FROM tasks WHERE id = ANY(ids)) ORDER BY id FOR UPDATE;
  PERFORM workflow_counted(x.workflow_id, -x.n, 0)
     FROM (SELECT workflow_id, count(*)::int AS n FROM tasks WHERE id = ANY(ids) AND workflow_id IS NOT NULL GROUP BY workflow_id ORDER BY workflow_id) x;
  IF queued IS NOT NULL THEN
    RETURN QUERY SELECT * FROM tasks WHERE id = ANY(queued);
  END IF;
END;
$$;

-- The trigger's form (one success outside a worker's batch: its caller reads the steps queued).
CREATE OR REPLACE FUNCTION workflow_steps_succeeded(ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM workflow_steps_released(ids);
END;
$$;
