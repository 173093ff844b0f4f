/**
 * `dlq redrive`: bulk retry of dead tasks in bounded steps, for a progress bar and so that one step
 * never holds the API long. Repeating one bulk call would not do: it takes the newest matches, so
 * tasks redriven in one step that die again at once (the bug is not fixed yet) would be the newest
 * again, and redriven again, while older ones never are. So the walk goes down the list of dead
 * tasks (GET /tasks, newest first, keyset cursor) and redrives one window of creation times per
 * page; a later window never reaches back into an earlier one, so each task is redriven at most
 * once per run. Windows are whole milliseconds (the precision the API shows): tasks created in the
 * same millisecond as a page's oldest one go with that page.
 */
import type { TaskFilter, TaskSchedulerClient } from '../client';
import type { ProgressBar } from './progress-bar';

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

/** `ms` as RFC 3339, or one microsecond earlier (created_after is exclusive; Postgres keeps microseconds). */
const iso = (ms: number) => new Date(ms).toISOString();
const justBefore = (ms: number) => `${iso(ms - 1).slice(0, -1)}999Z`;

export async function redrive(client: TaskSchedulerClient, filter: TaskFilter, opts: { limit: number | null; pageSize: number; progress: ProgressBar }): Promise<RedriveResult> {
  const dead = { ...filter, status: 'dead' };
  const userAfter = filter.created_after ? Date.parse(filter.created_after) : null;
  const result: RedriveResult = { matched: 0, changed: 0, calls: 0, limited: false };
  // The upper bound of the next window: nothing yet (the first window is open above).
  let hi: number | null = filter.created_before ? Date.parse(filter.created_before) : null;
  let hiText: string | undefined = filter.created_before;
  let cursor: string | undefined;
  for (;;) {
    const page = await client.listPage({ ...dead, limit: opts.pageSize, cursor });
    const oldest = page.tasks[page.tasks.length - 1];
    if (oldest) {
      const lo = Math.floor(Date.parse(oldest.created_at));
      if (hi === null || lo < hi) {
        // [lo, hi): everything created from lo's millisecond up to the last window.
        const after = userAfter !== null && userAfter >= lo ? filter.created_after : justBefore(lo);
        for (;;) {
          // Within --limit; without one, the API's own bound (BULK_MAX_LIMIT) applies to each call.
          const limit = opts.limit === null ? undefined : Math.min(BULK_CALL_MAX, opts.limit - result.changed);
          const r = await client.bulkRetry({ filter: { ...dead, created_after: after, created_before: hiText }, limit });
          result.calls++;
          result.matched += r.matched;
          result.changed += r.changed;
          opts.progress.update(result.matched, `${result.changed} queued again`);
          if (opts.limit !== null && result.changed >= opts.limit) {
            result.limited = true;
            return result;
          }
          // More in one window than one call may take (ties within a millisecond, or a small
          // BULK_MAX_LIMIT): the changed ones no longer match, so the next call carries on.
          if (!r.has_more || r.changed === 0) break;
        }
        hi = lo;
        hiText = iso(lo);
      }
    }
    if (page.next_cursor === null) return result;
    cursor = page.next_cursor;
  }
}
