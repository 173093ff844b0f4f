-- Per-task retry policy and timeout (POST /tasks `retry`, `timeout_ms`; NULL: the handler's or the
-- environment's), what a handler returned (`result`, at most 64 KiB as JSON), and what kind of
-- error ended an attempt. All nullable: existing rows are not rewritten.
ALTER TABLE tasks
  ADD COLUMN retry jsonb,
  ADD COLUMN timeout_ms integer CHECK (timeout_ms BETWEEN 1 AND 86400000),
  ADD COLUMN result jsonb;

ALTER TABLE task_runs
  ADD COLUMN error_type text,
  ADD COLUMN error_stack text;
