-- Operators cancel tasks and put final ones back to work (POST /tasks/:id/cancel, /retry and the
-- bulk forms). `cancelled` is final, like succeeded and dead.
ALTER TYPE task_status ADD VALUE IF NOT EXISTS 'cancelled';

-- A running task asked to stop: its attempt is aborted, and it ends `cancelled` unless it succeeds
-- first. NULL: nobody asked.
ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz;

-- Attempts counted before the task's latest retry by an operator: it may run until
-- attempts = retry_base + max_retries + 1 (a fresh budget; the attempt numbers keep counting up,
-- so the lease fences and the run history stay as they were).
ALTER TABLE tasks ADD COLUMN retry_base integer NOT NULL DEFAULT 0 CHECK (retry_base >= 0);

ALTER TABLE task_runs DROP CONSTRAINT IF EXISTS task_runs_outcome_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_outcome_check
  CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'discarded', 'cancelled'));
