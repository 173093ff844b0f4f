-- A workflow's stop (services/core/workflows/stop-on-failure.ts) spares the steps an operator's
-- retry reopened after the workflow's latest failure: reopened_at (0023), taken under the
-- workflow's lock, against the failure's finished_at. That was now(), when the failure's
-- transaction began, which can be before a retry that took the lock first and committed first (a
-- worker's failure waiting for the lock while the retry held it): the step that retry queued
-- looked asked for after the failure, escaped its stop and ran in a stopped workflow. A step's
-- failure now sets its finished_at again once its cascade holds the workflow's lock, so failures and
-- reopenings compare in the order they took the lock, which is their commit order.
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
    IF NEW.cancelled_by IS NULL THEN
      UPDATE tasks SET finished_at = clock_timestamp() WHERE id = NEW.id AND status::text IN ('dead', 'cancelled');
    END IF;
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

-- A workflow submitted with an Idempotency-Key is kept while its key is live, as a task is (its
-- idempotency_keys row's expires_at, IDEMPOTENCY_TTL_MS): retention deleted a finished workflow by
-- its status's age alone, so with a retention shorter than the key's life a client's repeat of the
-- POST found no workflow and ran the whole workflow again. The api sets this when it inserts the
-- workflow; retention skips the workflow until then.
ALTER TABLE workflows ADD COLUMN IF NOT EXISTS idempotency_expires_at timestamptz;
