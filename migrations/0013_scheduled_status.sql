-- Delayed tasks (POST /tasks `run_at` / `delay_ms`) are `scheduled` until they are due. A value
-- added to an enum cannot be used in the transaction that adds it: 0014 uses it.
ALTER TYPE task_status ADD VALUE IF NOT EXISTS 'scheduled';
