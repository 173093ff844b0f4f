-- Delayed tasks and cron schedules (docs/scheduling.md).

-- When a delayed task is due (NULL: it ran at once). Kept after it starts: start lateness is
-- first_started_at - run_at.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS run_at timestamptz;
-- The schedule that created the task, and the tick it was created for (NULL for a manual trigger).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS schedule text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS scheduled_for timestamptz;

-- Scheduled tasks by due time: the horizon loader and the reconciler read the ones due soon. A
-- million far-future tasks sit here, not in the unfinished index the reconciler walks.
CREATE INDEX IF NOT EXISTS tasks_scheduled_due_idx ON tasks (run_at, id) WHERE status = 'scheduled';
-- Listing (GET /tasks?status=scheduled), like tasks_tenant_unfinished_idx for the other waiting states.
CREATE INDEX IF NOT EXISTS tasks_tenant_scheduled_idx ON tasks (tenant, created_at, id) WHERE status = 'scheduled';
-- Exactly once per tick: the task of a schedule's tick is inserted at most once, whatever number
-- of workers try (INSERT … ON CONFLICT DO NOTHING), with no lock that could expire.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_schedule_tick_key ON tasks (tenant, schedule, scheduled_for) WHERE scheduled_for IS NOT NULL;
-- GET /tasks?schedule=NAME and a schedule's last runs.
CREATE INDEX IF NOT EXISTS tasks_tenant_schedule_idx ON tasks (tenant, schedule, created_at, id) WHERE schedule IS NOT NULL;

CREATE TABLE IF NOT EXISTS schedules (
  tenant         text        NOT NULL,
  name           text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  cron           text        NOT NULL CHECK (length(cron) BETWEEN 1 AND 256),
  timezone       text        NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
  -- The task each tick creates: {type, payload, priority, max_retries, retry, timeout_ms}.
  task           jsonb       NOT NULL,
  misfire        text        NOT NULL DEFAULT 'run_once' CHECK (misfire IN ('skip', 'run_once', 'catch_up')),
  catch_up_limit integer     NOT NULL DEFAULT 10 CHECK (catch_up_limit BETWEEN 1 AND 1000),
  overlap        text        NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
  paused         boolean     NOT NULL DEFAULT false,
  -- The earliest tick neither fired nor skipped yet (NULL: the expression has no more), advanced in
  -- the transaction that inserts the tick's task, on the database's clock.
  next_tick      timestamptz,
  -- The latest tick fired or skipped, and what became of it.
  last_tick      timestamptz,
  last_outcome   text        CHECK (last_outcome IN ('fired', 'skipped_misfire', 'skipped_overlap')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, name)
);
-- The ticker's read: schedules due now, earliest first.
CREATE INDEX IF NOT EXISTS schedules_due_idx ON schedules (next_tick) WHERE NOT paused AND next_tick IS NOT NULL;
