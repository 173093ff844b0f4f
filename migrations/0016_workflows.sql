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

-- Cancels the waiting steps that depend on `step`, transitively, as caused by `origin`.
CREATE OR REPLACE FUNCTION workflow_cancel_dependents(step uuid, origin uuid, reason text) RETURNS void
LANGUAGE sql AS $$
  WITH RECURSIVE d(id) AS (
    SELECT e.child FROM workflow_edges e JOIN tasks c ON c.id = e.child WHERE e.parent = step AND c.status = 'waiting'
    UNION
    SELECT e.child FROM d JOIN workflow_edges e ON e.parent = d.id JOIN tasks c ON c.id = e.child WHERE c.status = 'waiting'
  )
  UPDATE tasks t SET status = 'cancelled', cancelled_by = origin, last_error = reason, finished_at = now(), updated_at = now()
   WHERE t.id IN (SELECT id FROM d) AND t.status = 'waiting';
$$;

-- After `failed` (a step of workflow `wf` that ended dead or cancelled): its dependents are
-- cancelled, and under cancel_dependents every other waiting step too (no new step starts).
CREATE OR REPLACE FUNCTION workflow_step_failed(wf uuid, failed_step uuid, origin uuid, policy text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  s record;
BEGIN
  SELECT step_key, status::text AS status INTO s FROM tasks WHERE id = failed_step;
  PERFORM workflow_cancel_dependents(failed_step, origin, format('not run: it depends on step %s, which ended %s', s.step_key, s.status));
  IF policy = 'cancel_dependents' THEN
    UPDATE tasks SET status = 'cancelled', cancelled_by = origin, finished_at = now(), updated_at = now(),
           last_error = format('not run: step %s ended %s and the workflow stops (on_failure cancel_dependents)', s.step_key, s.status)
     WHERE workflow_id = wf AND status = 'waiting';
  END IF;
END;
$$;

-- A failed step was retried: the steps its failure cancelled wait again (or are queued when all
-- their dependencies have succeeded; the caller pushes those to Redis), unless another failure
-- still stands in their way.
CREATE OR REPLACE FUNCTION workflow_step_reopened(wf uuid, step uuid, policy text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  reopened uuid[];
  r record;
BEGIN
  reopened := ARRAY(SELECT id FROM tasks WHERE cancelled_by = step AND status = 'cancelled');
  IF cardinality(reopened) = 0 THEN RETURN; END IF;
  UPDATE tasks c SET status = 'waiting', cancelled_by = NULL, last_error = NULL, finished_at = NULL, cancel_requested_at = NULL, updated_at = now(),
         deps_waiting = (SELECT count(*) FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = c.id AND p.status <> 'succeeded')
   WHERE c.id = ANY(reopened);
  -- A dependency that is dead or cancelled for another reason keeps its dependents cancelled.
  FOR r IN SELECT DISTINCT ON (c.id) c.id, COALESCE(p.cancelled_by, p.id) AS origin, p.step_key, p.status::text AS status
             FROM tasks c JOIN workflow_edges e ON e.child = c.id JOIN tasks p ON p.id = e.parent
            WHERE c.id = ANY(reopened) AND c.status = 'waiting' AND p.status IN ('dead', 'cancelled') LOOP
    UPDATE tasks SET status = 'cancelled', cancelled_by = r.origin, finished_at = now(), updated_at = now(),
           last_error = format('not run: it depends on step %s, which ended %s', r.step_key, r.status)
     WHERE id = r.id AND status = 'waiting';
    PERFORM workflow_cancel_dependents(r.id, r.origin, format('not run: it depends on step %s, which ended %s', r.step_key, r.status));
  END LOOP;
  IF policy = 'cancel_dependents' THEN
    SELECT id, step_key, status::text AS status INTO r FROM tasks
     WHERE workflow_id = wf AND status IN ('dead', 'cancelled') AND cancelled_by IS NULL LIMIT 1;
    IF FOUND THEN
      UPDATE tasks SET status = 'cancelled', cancelled_by = r.id, finished_at = now(), updated_at = now(),
             last_error = format('not run: step %s ended %s and the workflow stops (on_failure cancel_dependents)', r.step_key, r.status)
       WHERE workflow_id = wf AND status = 'waiting';
    END IF;
  END IF;
  UPDATE tasks SET status = 'queued', updated_at = now() WHERE id = ANY(reopened) AND status = 'waiting' AND deps_waiting = 0;
END;
$$;

-- Steps `ids` just succeeded (each from a status that was not final): their workflows' counters
-- and status, and their waiting dependents' counts, set-wise. Row locks on the dependents serialize
-- parents finishing at once in different transactions: exactly one takes a dependent's count to
-- zero and queues it. A worker's batch of outcomes calls this once for all its steps' successes
-- (one row version of a fan-in per batch, not one per parent); the trigger calls it for one.
CREATE OR REPLACE FUNCTION workflow_steps_succeeded(ids uuid[]) RETURNS void
LANGUAGE sql AS $$
  -- Locks in one order everywhere, tasks before their workflow and each kind by id, so that
  -- workers, the reaper and operators changing steps of the same workflows never deadlock.
  SELECT 1 FROM tasks WHERE id IN (SELECT child FROM workflow_edges WHERE parent = ANY(ids)) AND status = 'waiting' ORDER BY id FOR UPDATE;
  UPDATE tasks c SET deps_waiting = c.deps_waiting - x.k,
         status = CASE WHEN c.deps_waiting - x.k <= 0 THEN 'queued'::task_status ELSE c.status END, updated_at = now()
    FROM (SELECT child, count(*)::int AS k FROM workflow_edges WHERE parent = ANY(ids) GROUP BY child) x
   WHERE c.id = x.child AND c.status = 'waiting';
  SELECT 1 FROM workflows WHERE id IN (SELECT workflow_id FROM tasks WHERE id = ANY(ids)) ORDER BY id FOR UPDATE;
  UPDATE workflows w SET
         unfinished = w.unfinished - x.n,
         status = CASE WHEN w.unfinished - x.n > 0 THEN 'running'
                       WHEN w.cancel_requested_at IS NOT NULL THEN 'cancelled'
                       WHEN w.failed > 0 THEN 'failed' ELSE 'succeeded' END,
         finished_at = CASE WHEN w.unfinished - x.n > 0 THEN NULL ELSE now() END,
         reported = CASE WHEN w.unfinished - x.n > 0 THEN false ELSE w.reported END,
         updated_at = now()
    FROM (SELECT workflow_id, count(*)::int AS n FROM tasks WHERE id = ANY(ids) AND workflow_id IS NOT NULL GROUP BY workflow_id) x
   WHERE w.id = x.workflow_id;
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
BEGIN
  IF d_unfinished = 0 AND d_failed = 0 THEN RETURN NULL; END IF;
  IF NEW.status = 'succeeded' THEN
    -- A worker writing a batch of outcomes does this for all of them at once (see above).
    IF current_setting('task_scheduler.batch_successes', true) IS DISTINCT FROM 'on' THEN
      PERFORM workflow_steps_succeeded(ARRAY[NEW.id]);
    END IF;
    RETURN NULL;
  END IF;
  SELECT on_failure INTO policy FROM workflows WHERE id = NEW.workflow_id;
  -- Cascades walk the graph themselves: the changes they make (one trigger level down) only count.
  -- They come before the workflow's row is locked (tasks before their workflow, as everywhere).
  IF is_failed AND NOT was_failed AND pg_trigger_depth() = 1 THEN
    PERFORM workflow_step_failed(NEW.workflow_id, NEW.id, COALESCE(NEW.cancelled_by, NEW.id), policy);
  ELSIF was_failed AND NOT is_final AND pg_trigger_depth() = 1 THEN
    PERFORM workflow_step_reopened(NEW.workflow_id, NEW.id, policy);
  END IF;
  -- One row version per change; the status follows from the counters as they become.
  UPDATE workflows w SET
         unfinished = w.unfinished + d_unfinished,
         failed = w.failed + d_failed,
         -- A step retried after the workflow was cancelled: the workflow runs again.
         cancel_requested_at = CASE WHEN d_unfinished > 0 THEN NULL ELSE w.cancel_requested_at END,
         status = CASE WHEN w.unfinished + d_unfinished > 0 THEN 'running'
                       WHEN w.cancel_requested_at IS NOT NULL THEN 'cancelled'
                       WHEN w.failed + d_failed > 0 THEN 'failed' ELSE 'succeeded' END,
         finished_at = CASE WHEN w.unfinished + d_unfinished > 0 THEN NULL ELSE now() END,
         reported = CASE WHEN w.unfinished + d_unfinished > 0 THEN false ELSE w.reported END,
         updated_at = now()
   WHERE w.id = NEW.workflow_id;
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS tasks_workflow_step_changed ON tasks;
CREATE TRIGGER tasks_workflow_step_changed AFTER UPDATE OF status ON tasks
  FOR EACH ROW WHEN (NEW.workflow_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
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
