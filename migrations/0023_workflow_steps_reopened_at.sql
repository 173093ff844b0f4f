-- When a workflow stops after a failure (on_failure cancel_dependents), the steps already queued
-- are cancelled unless an operator's retry asked for them after the failure. Which steps those are
-- was told by comparing a step's updated_at with the failure's finished_at: both are transaction
-- start times, so a step released by a success whose transaction began after the failure's but
-- committed before it looked "queued after the failure" and ran although the workflow had stopped
-- (and the workers' sweep picked that workflow again every second, to stop nothing).
-- Now a step records when a retry reopened it (reopened_at: the retried step itself and the
-- dependents it reopens), taken after the workflow's lock, so after any failure committed before
-- it; a stop spares only steps reopened after its failure.
-- Also: retrying a step of a workflow its user cancelled reopens the steps downstream of it that the
-- cancel stopped, as a failed step's retry reopens what its failure cancelled (before, they stayed
-- cancelled and the resumed workflow ended `failed` with no step failed).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS reopened_at timestamptz;

-- The steps a retry of `step` (of workflow `wf`) reopens: what its failure cancelled; and in a
-- workflow its user cancelled, the steps downstream of it that the cancel stopped (cancelled by no
-- step), so that retrying a step resumes what follows it there too. Read unlocked (the reopening
-- locks them; admission counts them before a retry).
CREATE OR REPLACE FUNCTION workflow_step_reopen_candidates(wf uuid, step uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
  SELECT id FROM tasks
   WHERE status::text = 'cancelled'
     AND (cancelled_by = step
          OR (cancelled_by IS NULL AND id = ANY(ARRAY(
                WITH RECURSIVE down(id) AS (
                  SELECT e.child FROM workflow_edges e
                   WHERE e.parent = step AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = wf AND w.cancel_requested_at IS NOT NULL)
                  UNION
                  SELECT e.child FROM down JOIN tasks c ON c.id = down.id AND c.status::text = 'cancelled' AND c.cancelled_by IS NULL
                    JOIN workflow_edges e ON e.parent = down.id)
                SELECT id FROM down))));
$$;

CREATE OR REPLACE FUNCTION workflow_step_reopened(wf uuid, step uuid, policy text, OUT du integer, OUT df integer)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  reopened uuid[];
  r record;
  n integer;
BEGIN
  du := 0;
  df := 0;
  reopened := ARRAY(
    SELECT id FROM tasks WHERE id IN (SELECT workflow_step_reopen_candidates(wf, step)) AND status::text = 'cancelled'
     ORDER BY id FOR UPDATE);
  IF cardinality(reopened) = 0 THEN RETURN; END IF;
  -- Their dependencies share-locked (by id) before their statuses are read below: a dependency's
  -- success or failure being written now (which counts down or cancels only steps it sees waiting)
  -- either commits first, and is read here, or waits for this transaction and then sees them waiting.
  PERFORM 1 FROM tasks WHERE id IN (SELECT parent FROM workflow_edges WHERE child = ANY(reopened)) ORDER BY id FOR SHARE;
  PERFORM workflow_quiet(true);
  UPDATE tasks c SET status = 'waiting', cancelled_by = NULL, last_error = NULL, finished_at = NULL, cancel_requested_at = NULL, updated_at = now(),
         reopened_at = clock_timestamp(),
         deps_waiting = (SELECT count(*) FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = c.id AND p.status <> 'succeeded')
   WHERE c.id = ANY(reopened);
  GET DIAGNOSTICS n = ROW_COUNT;
  du := du + n;
  df := df - n;
  -- A dependency that is dead or cancelled for another reason keeps its dependents cancelled.
  FOR r IN SELECT DISTINCT ON (c.id) c.id, COALESCE(p.cancelled_by, p.id) AS origin, p.step_key, p.status::text AS status
             FROM tasks c JOIN workflow_edges e ON e.child = c.id JOIN tasks p ON p.id = e.parent
            WHERE c.id = ANY(reopened) AND c.status::text = 'waiting' AND p.status::text IN ('dead', 'cancelled') LOOP
    PERFORM workflow_quiet(true);
    UPDATE tasks SET status = 'cancelled', cancelled_by = r.origin, finished_at = now(), updated_at = now(),
           last_error = format('not run: it depends on step %s, which ended %s', r.step_key, r.status)
     WHERE id = r.id AND status::text = 'waiting';
    GET DIAGNOSTICS n = ROW_COUNT;
    n := n + workflow_cancel_dependents(r.id, r.origin, format('not run: it depends on step %s, which ended %s', r.step_key, r.status));
    du := du - n;
    df := df + n;
  END LOOP;
  IF policy = 'cancel_dependents' THEN
    SELECT id, step_key, status::text AS status INTO r FROM tasks
     WHERE workflow_id = wf AND status IN ('dead', 'cancelled') AND cancelled_by IS NULL AND id <> step LIMIT 1;
    IF FOUND THEN
      n := workflow_stop_waiting(wf, r.id, format('not run: step %s ended %s and the workflow stops (on_failure cancel_dependents)', r.step_key, r.status));
      du := du - n;
      df := df + n;
    END IF;
  END IF;
  PERFORM workflow_quiet(true);
  UPDATE tasks SET status = 'queued', updated_at = now() WHERE id = ANY(reopened) AND status::text = 'waiting' AND deps_waiting = 0;
  PERFORM workflow_quiet(false);
END;
$$;
