-- Due times are kept to the millisecond. The delayed loader pages through scheduled tasks by
-- (run_at, id) and keeps its place as a millisecond time and an id (a JS Date within a pass, the
-- mark in Redis between passes): a run_at with microseconds (no service writes one, but SQL such as
-- now() + interval '4 seconds' does) lies after that place, so each page read the same tasks again
-- and the rest ran late through markDueQueued and the reconciler. Every write is rounded up to the
-- next millisecond (never earlier than asked); only a value with microseconds calls the function.
CREATE OR REPLACE FUNCTION tasks_run_at_to_ms() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.run_at := date_trunc('milliseconds', NEW.run_at) + interval '1 millisecond';
  RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS tasks_run_at_ms ON tasks;
CREATE TRIGGER tasks_run_at_ms BEFORE INSERT OR UPDATE OF run_at ON tasks
  FOR EACH ROW WHEN (NEW.run_at <> date_trunc('milliseconds', NEW.run_at))
  EXECUTE FUNCTION tasks_run_at_to_ms();

-- Those already waiting (read through tasks_scheduled_due_idx); the trigger rounds them.
UPDATE tasks SET run_at = run_at WHERE status = 'scheduled' AND run_at <> date_trunc('milliseconds', run_at);
