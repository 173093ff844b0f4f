-- overlap: skip skips a tick while any task of the schedule is unfinished (its ticks', its manual
-- runs', one retried since), not only its newest: the newest could be a quick manual run that had
-- finished while an earlier tick still ran. Only tasks of schedules have entries here, and only
-- while unfinished, so plain tasks pay nothing and a schedule's history is not read per tick.
CREATE INDEX IF NOT EXISTS tasks_schedule_unfinished_idx ON tasks (tenant, schedule)
  WHERE schedule IS NOT NULL AND status IN ('scheduled', 'queued', 'running', 'retrying');
