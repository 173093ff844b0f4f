-- A schedule whose last decided tick lies ahead of the database's clock: the clock was set back
-- (a forward step corrected) after a pass fired by the wrong time, and next_tick lies as far
-- ahead. The ticker finds such schedules each pass and moves next_tick back to the clock, so it
-- does not stay silent until the clock catches up. The range read (last_tick > now()) is at the
-- index's end: normally empty.
CREATE INDEX IF NOT EXISTS schedules_last_tick_idx ON schedules (last_tick) WHERE NOT paused AND last_tick IS NOT NULL;
