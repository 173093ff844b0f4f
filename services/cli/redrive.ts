/**
 * `dlq redrive`: bulk retry of dead tasks in bounded steps, for a progress bar and so that one step
 * never holds the API long. The steps follow the API's cursor (`next_cursor`), a position in the
 * dead tasks newest first: each step carries on strictly after the last, so tasks redriven in one
 * step that die again at once (the bug is not fixed yet) are behind it and never redriven twice in
 * one run, and tasks that die meanwhile are newer than the walk and wait for the next run. A step
 * may match none and still have more: the API reads a bounded number of tasks per call.
 */
import { ApiError, BulkResult, TaskFilter, TaskSchedulerClient } from '../client';
import type { ProgressBar } from './progress-bar';

/** Waits for the tenant's rate limit, in a row, before a step's refusal stands. */
const MAX_RATE_WAITS = 30;

export interface RedriveResult {
  /** Dead tasks the walk came across. */
  matched: number;
  /** Of those, queued again by this run (a racing redrive may have taken others). */
  changed: number;
  /** Bulk calls made. */
  calls: number;
  /** --limit was reached before the walk ended. */
  limited: boolean;
}

/** The API's default BULK_MAX_LIMIT: no call asks for more. */
export const BULK_CALL_MAX = 10_000;

export async function redrive(client: TaskSchedulerClient, filter: TaskFilter, opts: { limit: number | null; step: number; progress: ProgressBar }): Promise<RedriveResult> {
  const dead = { ...filter, status: 'dead' };
  const result: RedriveResult = { matched: 0, changed: 0, calls: 0, limited: false };
  let cursor: string | undefined;
  let step = opts.step;
  let waits = 0;
  for (;;) {
    // Within --limit: a call changes at most what it matches.
    const limit = opts.limit === null ? step : Math.min(step, opts.limit - result.changed);
    let r: BulkResult;
    try {
      r = await client.bulkRetry({ filter: dead, limit, cursor });
    } catch (err) {
      // A retry is admitted under the tenant's limits, a call whole or not at all: one larger than
      // the burst is sent again no larger; one over the rate waits for Retry-After (after the
      // client's own short retries).
      const refusal = limitRefusal(err);
      const max = callMax(err);
      if (max !== null && max < limit) step = max;
      else if (refusal?.burst !== undefined && refusal.burst > 0 && refusal.burst < limit) step = refusal.burst;
      else if (refusal?.retryAfterMs !== undefined && waits++ < MAX_RATE_WAITS) await new Promise((res) => setTimeout(res, refusal.retryAfterMs));
      else throw err;
      continue;
    }
    waits = 0;
    result.calls++;
    result.matched += r.matched;
    result.changed += r.changed;
    opts.progress.update(result.matched, `${result.changed} queued again`);
    if (r.next_cursor === null) return result;
    if (opts.limit !== null && result.changed >= opts.limit) {
      result.limited = true;
      return result;
    }
    cursor = r.next_cursor;
  }
}

/**
 * How many dead tasks match, up to `limit` (null: all): dry runs that follow the cursor, each as
 * large as one call may be. `has_more` when it stopped at `limit` with more to go.
 */
export async function countDead(client: TaskSchedulerClient, filter: TaskFilter, limit: number | null): Promise<{ matched: number; has_more: boolean }> {
  let matched = 0;
  let cursor: string | undefined;
  let most = BULK_CALL_MAX;
  for (;;) {
    const ask = limit === null ? undefined : Math.min(most, limit - matched);
    let r: BulkResult;
    try {
      r = await client.bulkRetry({ filter: { ...filter, status: 'dead' }, limit: ask, dry_run: true, cursor });
    } catch (err) {
      const max = callMax(err);
      if (ask === undefined || max === null || max >= ask) throw err;
      most = max;
      continue;
    }
    matched += r.matched;
    if (r.next_cursor === null) return { matched, has_more: false };
    if (limit !== null && matched >= limit) return { matched, has_more: true };
    cursor = r.next_cursor;
  }
}

/**
 * The API's BULK_MAX_LIMIT when `err` is its refusal of a larger `limit` (a deployment may set it
 * below a redrive step or BULK_CALL_MAX), else null: the call is sent again no larger.
 */
function callMax(err: unknown): number | null {
  if (!(err instanceof ApiError) || err.status !== 400) return null;
  const refusal = (err.problem.errors ?? []).find((e) => e.field === 'limit');
  const m = refusal ? /^must be an integer between 1 and (\d+)$/.exec(refusal.message) : null;
  return m ? Number(m[1]) : null;
}

/** A 429 of the tenant's limits: the burst a call was larger than, or how long to wait for the rate. */
function limitRefusal(err: unknown): { burst?: number; retryAfterMs?: number } | null {
  if (!(err instanceof ApiError) || err.status !== 429) return null;
  const fields = (err.problem.errors ?? []).map((e) => e.field);
  if (fields.includes('burst')) {
    const q = /;\s*q=(\d+)/.exec(err.headers.get('ratelimit-policy') ?? '');
    return q ? { burst: Number(q[1]) } : null;
  }
  const after = Number(err.headers.get('retry-after'));
  return fields.includes('rate_limit') && Number.isInteger(after) && after > 0 ? { retryAfterMs: after * 1000 } : null;
}
