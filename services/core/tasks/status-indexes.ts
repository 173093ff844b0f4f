/**
 * Which partial indexes of `tasks` hold the tasks of some statuses (migrations 0008 and 0010): the
 * scheduled ones, the unfinished ones, the final ones, and the dead or cancelled ones. A query names the index's
 * predicate as written (the planner only proves a partial index usable from literals, never from a
 * parameter), reads the narrowest index holding every status asked for, and checks the statuses
 * themselves on the rows it reads.
 */
import { FINAL_STATUSES, TaskStatus } from './priority';

const UNFINISHED_STATUSES: readonly TaskStatus[] = ['queued', 'running', 'retrying'];
// Delayed tasks not yet due have an index of their own (migration 0014), so that many far-future
// tasks do not sit in the unfinished index the reconciler walks.
const SCHEDULED_STATUSES: readonly TaskStatus[] = ['scheduled'];
const FAILED_STATUSES: readonly TaskStatus[] = ['dead', 'cancelled'];
// Workflow steps waiting for their dependencies (migration 0016), likewise kept out of the unfinished index.
const WAITING_STATUSES: readonly TaskStatus[] = ['waiting'];

const predicate = (set: readonly TaskStatus[]) => `status IN (${set.map((s) => `'${s}'`).join(', ')})`;
const within = (statuses: readonly TaskStatus[], set: readonly TaskStatus[]) => statuses.every((s) => set.includes(s));

/**
 * The predicates of the indexes to read for tasks in `statuses` (all statuses when undefined):
 * one, or those of the groups asked for (a query then merges the ordered reads).
 */
export function statusPredicates(statuses: readonly TaskStatus[] | undefined): string[] {
  if (statuses) {
    for (const set of [WAITING_STATUSES, SCHEDULED_STATUSES, FAILED_STATUSES, UNFINISHED_STATUSES, FINAL_STATUSES] as const) if (within(statuses, set)) return [predicate(set)];
    return [WAITING_STATUSES, SCHEDULED_STATUSES, UNFINISHED_STATUSES, FINAL_STATUSES].filter((set) => set.some((s) => statuses.includes(s))).map(predicate);
  }
  return [predicate(WAITING_STATUSES), predicate(SCHEDULED_STATUSES), predicate(UNFINISHED_STATUSES), predicate(FINAL_STATUSES)];
}

/**
 * A read of tasks in `statuses`, newest first, at most `limit` rows: `read(predicate)` is one
 * index's read (it must order by created_at DESC, id DESC); several are merged in order (a Merge
 * Append of the ordered reads, no sort).
 */
export function newestFirst(statuses: readonly TaskStatus[] | undefined, read: (predicate: string) => string, limit: number | string): string {
  const reads = statusPredicates(statuses).map(read);
  if (reads.length === 1) return reads[0]!;
  return `SELECT * FROM (${reads.map((r) => `(${r})`).join(' UNION ALL ')}) merged ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
}
