-- Workflow steps whose dependencies have not all succeeded are `waiting` (not in Redis). A value
-- added to an enum cannot be used in the transaction that adds it: 0016 uses it.
ALTER TYPE task_status ADD VALUE IF NOT EXISTS 'waiting';
