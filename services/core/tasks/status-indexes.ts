/**
 * Which partial indexes of `tasks` hold the tasks of some statuses (migrations 0008 and 0010): the
 * unfinished ones, the final ones, and the dead or cancelled ones. A query names the index's
 * predicate as written (the planner only proves a partial index usable from literals, never from a
 * parameter), reads the narrowest index holding every status asked for, and checks the statuses
 * themselves on the rows it reads.
 */
import { FINAL_STATUSES, TaskStatus } from './priority';

const UNFINISHED_STATUSES: readonly TaskStatus[] = ['queued', 'running', 'retrying'];
const FAILED_STATUSES: readonly TaskStatus[] = ['dead', 'cancelled'];

const predicate = (set: readonly TaskStatus[]) => `status IN (${set.map((s) => `'${s}'`).join(', ')})`;
const within = (statuses: readonly TaskStatus[], set: readonly TaskStatus[]) => statuses.every((s) => set.includes(s));

/**
 * The predicates of the indexes to read for tasks in `statuses` (all statuses when undefined):
 * one, or the unfinished and the final ones (a query then merges the two ordered reads).
 */
export function statusPredicates(statuses: readonly TaskStatus[] | undefined): string[] {
  if (statuses) {
    for (const set of [FAILED_STATUSES, UNFINISHED_STATUSES, FINAL_STATUSES] as const) if (within(statuses, set)) return [predicate(set)];
  }
  return [predicate(UNFINISHED_STATUSES), predicate(FINAL_STATUSES)];
}

/**
 * A read of tasks in `statuses`, newest first, at most `limit` rows: `read(predicate)` is one
 * index's read (it must order by created_at DESC, id DESC); two are merged in order (a Merge
 * Append of the ordered reads, no sort).
 */
export function newestFirst(statuses: readonly TaskStatus[] | undefined, read: (predicate: string) => string, limit: number | string): string {
  const reads = statusPredicates(statuses).map(read);
  if (reads.length === 1) return reads[0]!;
  return `SELECT * FROM (${reads.map((r) => `(${r})`).join(' UNION ALL ')}) merged ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
}
