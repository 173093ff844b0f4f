-- A retried step's dependents wait again (workflow_step_reopened) counting their dependencies that
-- have not succeeded. Those statuses were read without a lock: a dependency succeeding (or failing)
-- in a transaction that overlapped the retry was read as unfinished, while its own write, not seeing
-- the dependent wait yet, did not count it down (or cancel it); the dependent then waited forever.
-- The function now share-locks the dependencies first, so one of the two writes waits for the other.

CREATE OR REPLACE FUNCTION workflow_step_reopened(wf uuid, step uuid, policy text, OUT du integer, OUT df integer)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  reopened uuid[];
  r record;
  n integer;
BEGIN
  du := 0;
  df := 0;
  reopened := ARRAY(SELECT id FROM tasks WHERE cancelled_by = step AND status::text = 'cancelled' ORDER BY id FOR UPDATE);
  IF cardinality(reopened) = 0 THEN RETURN; END IF;
  -- Their dependencies share-locked (by id) before their statuses are read below: a dependency's
  -- success or failure being written now (which counts down or cancels only steps it sees waiting)
  -- either commits first, and is read here, or waits for this transaction and then sees them waiting.
  PERFORM 1 FROM tasks WHERE id IN (SELECT parent FROM workflow_edges WHERE child = ANY(reopened)) ORDER BY id FOR SHARE;
  PERFORM workflow_quiet(true);
  UPDATE tasks c SET status = 'waiting', cancelled_by = NULL, last_error = NULL, finished_at = NULL, cancel_requested_at = NULL, updated_at = now(),
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
