-- Tasks are the authoritative record; Redis only indexes the ones waiting or running.
CREATE TYPE task_status AS ENUM ('queued', 'running', 'retrying', 'succeeded', 'dead');

CREATE TABLE tasks (
  id              uuid PRIMARY KEY,
  type            text        NOT NULL CHECK (length(type) BETWEEN 1 AND 128),
  priority        text        NOT NULL CHECK (priority IN ('critical', 'high', 'default', 'low')),
  payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  status          task_status NOT NULL DEFAULT 'queued',
  -- Attempts started so far (a lost lease counts: the attempt ran, or may have).
  attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_retries     integer     NOT NULL CHECK (max_retries BETWEEN 0 AND 100),
  idempotency_key text,
  last_error      text,
  -- Token of the current lease; every write on behalf of an attempt is conditional on it.
  lease_token     text,
  run_after       timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  first_started_at timestamptz,
  finished_at     timestamptz
);

-- The unfinished tasks, for the reconciler and operators; final ones drop out of this index.
CREATE INDEX tasks_unfinished_idx ON tasks (status, updated_at)
  WHERE status IN ('queued', 'running', 'retrying');

-- One row per attempt, written once, when its outcome is known (a running attempt shows on the task).
CREATE TABLE task_runs (
  id          bigserial PRIMARY KEY,
  task_id     uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  attempt     integer     NOT NULL CHECK (attempt >= 1),
  worker_id   text        NOT NULL,
  lease_token text        NOT NULL UNIQUE,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  -- succeeded / failed: the handler's outcome; expired: the lease ran out (reaped) or vanished with
  -- Redis data; released: handed back at shutdown; discarded: the outcome arrived after the lease was lost.
  outcome     text        NOT NULL
              CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'discarded')),
  error       text,
  duration_ms double precision
);

CREATE INDEX task_runs_task_idx ON task_runs (task_id, attempt);
