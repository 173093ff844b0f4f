-- Steps a workflow's cancel (POST /workflows/:id/cancel) cancelled, or asked to stop, carry
-- cancelled_with_workflow. Under on_failure cancel_dependents every step ended dead or cancelled
-- by no step counted as a failure that stops the workflow, the user's cancel included: retrying
-- one branch of a cancelled workflow reopened the steps downstream of it, and at once cancelled
-- them again "because" another branch's root had ended cancelled (by that same cancel), so nothing
-- after the retried step ran; and retrying that other root later did not reopen its own branch,
-- since the walk downstream needed the workflow's cancel request, which the first retry cleared.
-- Now such steps stop nothing (the reopening's check, the trigger, the stop's failure), and a
-- retry reopens the marked steps downstream of it whatever became of the workflow since. A retry
-- clears the mark.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS cancelled_with_workflow boolean;

CREATE OR REPLACE FUNCTION workflow_step_reopen_candidates(wf uuid, step uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
  SELECT id FROM tasks
   WHERE status::text = 'cancelled'
     AND (cancelled_by = step
          OR (cancelled_by IS NULL AND id = ANY(ARRAY(
                WITH RECURSIVE down(id) AS (
                  SELECT e.child FROM workflow_edges e JOIN tasks c ON c.id = e.child
                   WHERE e.parent = step AND c.status::text = 'cancelled' AND c.cancelled_by IS NULL
                     AND (c.cancelled_with_workflow OR EXISTS (SELECT 1 FROM workflows w WHERE w.id = wf AND w.cancel_requested_at IS NOT NULL))
                  UNION
                  SELECT e.child FROM down JOIN workflow_edges e ON e.parent = down.id JOIN tasks c ON c.id = e.child
                   WHERE c.status::text = 'cancelled' AND c.cancelled_by IS NULL
                     AND (c.cancelled_with_workflow OR EXISTS (SELECT 1 FROM workflows w WHERE w.id = wf AND w.cancel_requested_at IS NOT NULL)))
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
         reopened_at = clock_timestamp(), cancelled_with_workflow = NULL,
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
     WHERE workflow_id = wf AND status IN ('dead', 'cancelled') AND cancelled_by IS NULL AND cancelled_with_workflow IS NOT TRUE AND id <> step LIMIT 1;
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

-- A workflow's stop (services/core/workflows/stop-on-failure.ts) spares the steps an operator's
-- retry reopened after the workflow's latest failure: reopened_at (0023), taken under the
-- workflow's lock, against the failure's finished_at. That was now(), when the failure's
-- transaction began, which can be before a retry that took the lock first and committed first (a
-- worker's failure waiting for the lock while the retry held it): the step that retry queued
-- looked asked for after the failure, escaped its stop and ran in a stopped workflow. A step's
-- failure now sets its finished_at again once its cascade holds the workflow's lock, so failures and
-- reopenings compare in the order they took the lock, which is their commit order.
-- (And a step its workflow's cancel stopped stops nothing; see above.)
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
    -- A failure that stops its workflow (not one of its cascade's): ended once it holds the lock,
    -- after every reopening committed before it (a stop compares the two).
    IF NEW.cancelled_by IS NULL AND NEW.cancelled_with_workflow IS NOT TRUE THEN
      UPDATE tasks SET finished_at = clock_timestamp() WHERE id = NEW.id AND status::text IN ('dead', 'cancelled');
    END IF;
    -- A step its workflow's cancel stopped is no failure that stops the workflow (a retry may have
    -- resumed it since): only what depends on it is cancelled.
    n := workflow_step_failed(NEW.workflow_id, NEW.id, COALESCE(NEW.cancelled_by, NEW.id),
                              CASE WHEN NEW.cancelled_with_workflow THEN 'continue' ELSE policy END);
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

-- A workflow submitted with an Idempotency-Key is kept while its key is live, as a task is (its
-- idempotency_keys row's expires_at, IDEMPOTENCY_TTL_MS): retention deleted a finished workflow by
-- its status's age alone, so with a retention shorter than the key's life a client's repeat of the
-- POST found no workflow and ran the whole workflow again. The api sets this when it inserts the
-- workflow; retention skips the workflow until then.
ALTER TABLE workflows ADD COLUMN IF NOT EXISTS idempotency_expires_at timestamptz;
