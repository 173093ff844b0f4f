-- Writes that change a workflow's graph state read other steps' statuses and change only the steps
-- they see in a given state: a success counts down the steps it sees waiting, a failure cancels
-- them, a retry reopens the steps it sees cancelled by the retried step and counts their
-- dependencies not succeeded. Two of them in overlapping transactions could each miss the other's
-- write (write skew), and leave a step waiting forever, or cancelled by a step that has since
-- succeeded. Two changes here:
-- 1. A failure's cascade, a retry's reopening and a workflow's cancel take the workflow's advisory
--    lock first (workflow_lock), so they run one at a time per workflow, each seeing what the one
--    before it committed. Successes, the hot path, do not take it.
-- 2. A reopening share-locks the reopened steps' dependencies before it reads their statuses, so a
--    dependency's outcome being written at that moment either commits first (and is read) or waits
--    for the reopening (and then sees the steps waiting).

-- The transaction-scoped advisory lock of workflow `wf`.
CREATE OR REPLACE FUNCTION workflow_lock(wf uuid) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(hashtextextended('workflow:' || wf::text, 0));
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

CREATE OR REPLACE FUNCTION workflow_step_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  was_final  boolean := OLD.status IN ('succeeded', 'dead', 'cancelled');
  is_final   boolean := NEW.status IN ('succeeded', 'dead', 'cancelled');
  was_failed boolean := OLD.status IN ('dead', 'cancelled');
  is_failed  boolean := NEW.status IN ('dead', 'cancelled');
  d_unfinished integer := CASE WHEN is_final AND NOT was_final THEN -1 WHEN was_final AND NOT is_final THEN 1 ELSE 0 END;
  d_failed     integer := is_failed::int - was_failed::int;
  policy text;
  n integer;
  r record;
BEGIN
  IF d_unfinished = 0 AND d_failed = 0 THEN RETURN NULL; END IF;
  -- A cascade or a workflow's cancel counts what it changes itself.
  IF current_setting('task_scheduler.steps_counted_by_caller', true) = 'on' THEN RETURN NULL; END IF;
  IF NEW.status = 'succeeded' THEN
    -- A worker writing a batch of outcomes does this for all of them at once.
    IF current_setting('task_scheduler.batch_successes', true) IS DISTINCT FROM 'on' THEN
      PERFORM workflow_steps_succeeded(ARRAY[NEW.id]);
    END IF;
    RETURN NULL;
  END IF;
  -- Cascades and reopenings of one workflow one at a time (see workflow_lock).
  PERFORM workflow_lock(NEW.workflow_id);
  SELECT on_failure INTO policy FROM workflows WHERE id = NEW.workflow_id;
  -- The cascades come before the workflow's row is locked (tasks before their workflow, as everywhere).
  IF is_failed AND NOT was_failed THEN
    n := workflow_step_failed(NEW.workflow_id, NEW.id, COALESCE(NEW.cancelled_by, NEW.id), policy);
    d_unfinished := d_unfinished - n;
    d_failed := d_failed + n;
  ELSIF was_failed AND NOT is_final THEN
    SELECT * INTO r FROM workflow_step_reopened(NEW.workflow_id, NEW.id, policy);
    d_unfinished := d_unfinished + r.du;
    d_failed := d_failed + r.df;
  END IF;
  PERFORM workflow_counted(NEW.workflow_id, d_unfinished, d_failed);
  RETURN NULL;
END;
$$;
