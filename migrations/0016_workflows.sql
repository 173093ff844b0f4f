-- Workflows: DAGs of tasks (docs/workflows.md). Each step is a task; its edges are rows of
-- workflow_edges; the trigger below keeps every workflow's counters and its steps' states in step
-- with their tasks, in the transaction that changes a step's status, whoever changes it (an
-- outcome, the reaper, an operator's cancel or retry, the reconciler).

CREATE TABLE IF NOT EXISTS workflows (
  id                  uuid        PRIMARY KEY,
  tenant              text        NOT NULL,
  name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  status              text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  on_failure          text        NOT NULL CHECK (on_failure IN ('cancel_dependents', 'continue')),
  steps               integer     NOT NULL CHECK (steps > 0),
  -- Steps not final yet, and steps that ended dead or cancelled: kept by the trigger.
  unfinished          integer     NOT NULL CHECK (unfinished >= 0),
  failed              integer     NOT NULL DEFAULT 0 CHECK (failed >= 0),
  idempotency_key     text,
  request_hash        text,
  cancel_requested_at timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  finished_at         timestamptz,
  -- Counted in workflows_finished_total (by whichever worker claimed it); a retry that reopens
  -- the workflow clears it, so its next end counts again.
  reported            boolean     NOT NULL DEFAULT false
);
-- GET /workflows, newest first, per tenant.
CREATE INDEX IF NOT EXISTS workflows_tenant_created_idx ON workflows (tenant, created_at, id);
-- POST /workflows with an Idempotency-Key: one workflow per key and tenant.
CREATE UNIQUE INDEX IF NOT EXISTS workflows_idempotency_key ON workflows (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Retention: finished workflows, oldest first.
CREATE INDEX IF NOT EXISTS workflows_finished_idx ON workflows (finished_at) WHERE finished_at IS NOT NULL;
-- The metrics: workflows running, and finished ones not counted yet.
CREATE INDEX IF NOT EXISTS workflows_running_idx ON workflows (created_at) WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS workflows_unreported_idx ON workflows (id) WHERE finished_at IS NOT NULL AND NOT reported;

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS workflow_id uuid;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS step_key text;
-- Dependencies not succeeded yet: the step is queued when its last one succeeds.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS deps_waiting integer;
-- The step whose failure cancelled this one: retrying that step makes this one wait again.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS cancelled_by uuid;

CREATE UNIQUE INDEX IF NOT EXISTS tasks_workflow_step_key ON tasks (workflow_id, step_key) WHERE workflow_id IS NOT NULL;
-- A workflow's waiting steps (cancelled together when a step fails under cancel_dependents).
CREATE INDEX IF NOT EXISTS tasks_workflow_waiting_idx ON tasks (workflow_id) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS tasks_cancelled_by_idx ON tasks (cancelled_by) WHERE cancelled_by IS NOT NULL;
-- Listing (GET /tasks?status=waiting), like tasks_tenant_scheduled_idx.
CREATE INDEX IF NOT EXISTS tasks_tenant_waiting_idx ON tasks (tenant, created_at, id) WHERE status = 'waiting';

CREATE TABLE IF NOT EXISTS workflow_edges (
  parent uuid NOT NULL,
  child  uuid NOT NULL,
  PRIMARY KEY (parent, child)
);
CREATE INDEX IF NOT EXISTS workflow_edges_child_idx ON workflow_edges (child, parent);

-- Changes that count their steps themselves (a cascade, a workflow's cancel) are made with
-- task_scheduler.steps_counted_by_caller on: the trigger then leaves those rows alone, and the
-- workflow's counters change once for all of them rather than once per step.
CREATE OR REPLACE FUNCTION workflow_quiet(quiet boolean) RETURNS void
LANGUAGE sql AS $$
  SELECT set_config('task_scheduler.steps_counted_by_caller', CASE WHEN quiet THEN 'on' ELSE 'off' END, true);
$$;

-- A workflow's counters changed by `du` (unfinished) and `df` (failed); its status follows. A step
-- reopened by a retry (du > 0) runs the workflow again, even one an operator had cancelled.
CREATE OR REPLACE FUNCTION workflow_counted(wf uuid, du integer, df integer) RETURNS void
LANGUAGE sql AS $$
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
$$;

-- Cancels the waiting steps that depend on `step`, transitively, as caused by `origin`; returns how many.
-- These functions reach steps by id, one index probe each, whatever the planner's statistics say:
-- a new workflow's rows have none yet, and a sequential scan per level of a 10,000-step chain took
-- a minute (enable_seqscan off). A status is compared as text where a step is reached by id: as
-- the enum it matches a partial index by status, which stale statistics make look cheap to read
-- whole for every id (services/core/tasks/attempt-store.ts says the same of outcomes).
CREATE OR REPLACE FUNCTION workflow_cancel_dependents(step uuid, origin uuid, reason text) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  n integer;
BEGIN
  PERFORM workflow_quiet(true);
  WITH RECURSIVE d(id) AS (
    SELECT e.child FROM workflow_edges e JOIN tasks c ON c.id = e.child WHERE e.parent = step AND c.status::text = 'waiting'
    UNION
    SELECT e.child FROM d JOIN workflow_edges e ON e.parent = d.id JOIN tasks c ON c.id = e.child WHERE c.status::text = 'waiting'
  )
  UPDATE tasks t SET status = 'cancelled', cancelled_by = origin, last_error = reason, finished_at = now(), updated_at = now()
   WHERE t.id IN (SELECT id FROM d) AND t.status::text = 'waiting';
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM workflow_quiet(false);
  RETURN n;
END;
$$;

-- Every waiting step of workflow `wf`, cancelled as caused by `origin` (on_failure cancel_dependents); returns how many.
CREATE OR REPLACE FUNCTION workflow_stop_waiting(wf uuid, origin uuid, reason text) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  n integer;
BEGIN
  PERFORM workflow_quiet(true);
  UPDATE tasks SET status = 'cancelled', cancelled_by = origin, finished_at = now(), updated_at = now(), last_error = reason
   WHERE id IN (SELECT id FROM tasks WHERE workflow_id = wf AND status = 'waiting' ORDER BY id FOR UPDATE) AND status = 'waiting';
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM workflow_quiet(false);
  RETURN n;
END;
$$;

-- After `failed_step` of workflow `wf` ended dead or cancelled: its dependents are cancelled, and
-- under cancel_dependents every other waiting step too (no new step starts). Returns how many.
CREATE OR REPLACE FUNCTION workflow_step_failed(wf uuid, failed_step uuid, origin uuid, policy text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  s record;
  n integer;
BEGIN
  SELECT step_key, status::text AS status INTO s FROM tasks WHERE id = failed_step;
  n := workflow_cancel_dependents(failed_step, origin, format('not run: it depends on step %s, which ended %s', s.step_key, s.status));
  IF policy = 'cancel_dependents' THEN
    n := n + workflow_stop_waiting(wf, origin, format('not run: step %s ended %s and the workflow stops (on_failure cancel_dependents)', s.step_key, s.status));
  END IF;
  RETURN n;
END;
$$;

-- A failed step was retried: the steps its failure cancelled wait again (or are queued when all
-- their dependencies have succeeded; the caller pushes those to Redis), unless another failure
-- still stands in their way. Returns the change to the workflow's counters.
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

-- Steps `ids` just succeeded (each from a status that was not final): their waiting dependents'
-- counts, and their workflows' counters, set-wise. Row locks on the dependents serialize parents
-- finishing at once in different transactions: exactly one takes a dependent's count to zero and
-- queues it. A worker's batch of outcomes calls this once for all its steps' successes (one row
-- version of a fan-in per batch, not one per parent); the trigger calls it for one. Locks come in
-- one order everywhere, tasks before their workflow and each kind by id, so that workers, the
-- reaper and operators changing steps of the same workflows never deadlock.
CREATE OR REPLACE FUNCTION workflow_steps_succeeded(ids uuid[]) RETURNS void
LANGUAGE sql SET enable_seqscan = off AS $$
  SELECT 1 FROM tasks WHERE id IN (SELECT child FROM workflow_edges WHERE parent = ANY(ids)) AND status::text = 'waiting' ORDER BY id FOR UPDATE;
  UPDATE tasks c SET deps_waiting = c.deps_waiting - x.k,
         status = CASE WHEN c.deps_waiting - x.k <= 0 THEN 'queued'::task_status ELSE c.status END, updated_at = now()
    FROM (SELECT child, count(*)::int AS k FROM workflow_edges WHERE parent = ANY(ids) GROUP BY child) x
   WHERE c.id = x.child AND c.status::text = 'waiting';
  SELECT 1 FROM workflows WHERE id IN (SELECT workflow_id FROM tasks WHERE id = ANY(ids)) ORDER BY id FOR UPDATE;
  SELECT workflow_counted(x.workflow_id, -x.n, 0)
    FROM (SELECT workflow_id, count(*)::int AS n FROM tasks WHERE id = ANY(ids) AND workflow_id IS NOT NULL GROUP BY workflow_id ORDER BY workflow_id) x;
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

DROP TRIGGER IF EXISTS tasks_workflow_step_changed ON tasks;
-- Only changes into or out of a final status, or between success and failure, call the function:
-- a step's other moves (waiting -> queued -> running -> retrying) change nothing it keeps.
CREATE TRIGGER tasks_workflow_step_changed AFTER UPDATE OF status ON tasks
  FOR EACH ROW WHEN (NEW.workflow_id IS NOT NULL AND (
    (OLD.status IN ('succeeded', 'dead', 'cancelled')) IS DISTINCT FROM (NEW.status IN ('succeeded', 'dead', 'cancelled'))
    OR (OLD.status IN ('dead', 'cancelled')) IS DISTINCT FROM (NEW.status IN ('dead', 'cancelled'))))
  EXECUTE FUNCTION workflow_step_changed();

-- Retention deletes a workflow's steps as it deletes any final task (KEEP_CONDITIONS keeps them
-- while their workflow runs): their edges go with them, and the workflow with its last step.
CREATE OR REPLACE FUNCTION workflow_step_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM workflow_edges WHERE child = OLD.id;
  DELETE FROM workflow_edges WHERE parent = OLD.id;
  DELETE FROM workflows w WHERE w.id = OLD.workflow_id AND w.finished_at IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = OLD.workflow_id);
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS tasks_workflow_step_deleted ON tasks;
CREATE TRIGGER tasks_workflow_step_deleted AFTER DELETE ON tasks
  FOR EACH ROW WHEN (OLD.workflow_id IS NOT NULL)
  EXECUTE FUNCTION workflow_step_deleted();
