/** A cron schedule as stored in Postgres (migration 0014) and the task each of its ticks creates. */
import type { RetryPolicy } from '../tasks/backoff';
import type { Priority } from '../tasks/priority';

export const MISFIRE_POLICIES = ['skip', 'run_once', 'catch_up'] as const;
export type MisfirePolicy = (typeof MISFIRE_POLICIES)[number];

export const OVERLAP_POLICIES = ['allow', 'skip'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** What became of a schedule's latest tick. */
export type TickOutcome = 'fired' | 'skipped_misfire' | 'skipped_overlap';

/** The task a tick creates (the fields of POST /tasks a schedule may set), as stored in `schedules.task`. */
export interface ScheduleTask {
  type: string;
  payload: unknown;
  priority: Priority;
  max_retries: number;
  retry: RetryPolicy | null;
  timeout_ms: number | null;
}

/** What a schedule's owner sets: the body of POST /schedules with its defaults filled in. */
export interface ScheduleSpec {
  name: string;
  cron: string;
  timezone: string;
  task: ScheduleTask;
  misfire: MisfirePolicy;
  catch_up_limit: number;
  overlap: OverlapPolicy;
  paused: boolean;
}

export interface ScheduleRow extends ScheduleSpec {
  tenant: string;
  /** The earliest tick neither fired nor skipped (null: the expression has no more). */
  next_tick: Date | null;
  last_tick: Date | null;
  last_outcome: TickOutcome | null;
  created_at: Date;
  updated_at: Date;
}

export const SCHEDULE_COLUMNS = 'tenant, name, cron, timezone, task, misfire, catch_up_limit, overlap, paused, next_tick, last_tick, last_outcome, created_at, updated_at';
