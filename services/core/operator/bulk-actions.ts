/**
 * Bulk cancel and retry (POST /tasks/cancel, POST /tasks/retry: the dead-letter redrive). The tasks
 * matching a filter are walked newest first from a keyset position (task-cursor.ts) in pages of
 * `batch`, and each page goes through the single-task use cases, which lock and check every row
 * again. So a task is changed at most once however many bulk calls race, and each page is committed
 * on its own (a call that fails part way has changed what it reported so far).
 *
 * What one call costs is bounded by settings, not by the table: it changes at most `limit` tasks
 * (BULK_MAX_LIMIT bounds it) and reads at most `scanRows` rows (BULK_SCAN_ROWS), checking the filter
 * on the rows it reads, so a filter that matches few tasks among many stops at the bound. It answers
 * where it stopped (`next`): a walk that carries on from there visits every matching task once,
 * since a position is a (created_at, id), which a change of status does not move.
 */
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import type { TaskCursor } from '../tasks/task-cursor';
import type { TaskFilter } from '../tasks/task-filter';
import { scanQuery, ScanRowMarks } from '../tasks/task-scan';
import { cancelTasks } from './cancel-tasks';
import { retryTasksCounted } from './retry-tasks';

export interface BulkRequest {
  /** The caller's filter, its statuses those the action applies to (the tenant is added here). */
  filter: TaskFilter;
  limit: number;
  dryRun: boolean;
  /** Start strictly after this position (a `next` of an earlier call); null: from the newest. */
  after: TaskCursor | null;
}

export interface BulkResult {
  /** Tasks that matched in what this call read, up to `limit`. */
  matched: number;
  /** Of those, the ones this call changed (a racing call may have changed the others first). */
  changed: number;
  /** More tasks may match beyond where this call stopped: call again from `next` to carry on. */
  has_more: boolean;
  /** Where this call stopped (null when it read to the end). */
  next: TaskCursor | null;
}

export interface BulkDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  /** Tasks per page (BULK_BATCH): one transaction and one Redis call each. */
  batch: number;
  /** Rows one call reads at most (BULK_SCAN_ROWS). */
  scanRows: number;
}

export type BulkAction = 'cancel' | 'retry';

type Row = { id: string } & ScanRowMarks;
const position = (r: Row): TaskCursor => ({ createdAt: r.created_at_text, id: r.id });

/** What a call did beyond its answer: changes by kind, and for a dry run the ids it matched. */
export interface BulkDetail {
  byKind: Record<string, number>;
  /** Steps downstream that retried steps reopened (unfinished again, like the tasks changed). */
  reopened: number;
  /** A dry run's matches, newest first (at most `limit`): what the same call would go on to change. */
  ids: string[];
  /** Their places, one per id. */
  places?: TaskCursor[];
  /**
   * Set once a page's change committed: every matching task up to this place (newest first) was
   * handled, none after it changed. A call that fails part way carries on from here.
   */
  through?: TaskCursor;
}

/**
 * Runs `action` over the tasks of `tenant` that `req` selects. `d`, when given, is kept up to date
 * page by page (as retryMatched's `done`), so a caller whose call fails part way knows what changed.
 */
export async function bulkAction(deps: BulkDeps, action: BulkAction, tenant: string, req: BulkRequest, d: BulkDetail = { byKind: {}, reopened: 0, ids: [] }): Promise<BulkResult & BulkDetail> {
  let matched = 0;
  let changed = 0;
  let after = req.after;
  // Rows this call may still read: each page's read starts after the last row the page before used.
  let budget = deps.scanRows;
  for (;;) {
    const want = Math.min(deps.batch, req.limit - matched);
    // The page that reaches the limit looks one match further, to say whether there are more.
    const last = want === req.limit - matched;
    const { rows } = await deps.pool.query<Row>(scanQuery('id, created_at', tenant, req.filter, after, last ? want + 1 : want, budget));
    const hits = rows.filter((r) => r.hit);
    const page = hits.slice(0, want);
    matched += page.length;
    const end = page[page.length - 1];
    if (req.dryRun) {
      d.ids.push(...page.map((r) => r.id));
      d.places?.push(...page.map(position));
    } else if (page.length > 0) {
      changed += await change(deps, action, tenant, page.map((r) => r.id), d, req.filter.statuses);
      d.through = position(end!);
    }
    if (hits.length > want) return { matched, changed, has_more: true, next: position(end!), ...d };
    if (page.length === want && !last) {
      // A full page, read up to its last match: carry on after it with what is left of the budget.
      budget -= Number(end!.read);
      after = position(end!);
      if (budget > 0) continue;
      return { matched, changed, has_more: true, next: after, ...d };
    }
    // Fewer matches than asked for: the read ended at its bound (carry on after the last row it
    // read) or at the end of the tasks.
    const bound = rows.find((r) => Number(r.read) === budget);
    return { matched, changed, has_more: bound !== undefined, next: bound ? position(bound) : null, ...d };
  }
}

/**
 * Retries `ids` (a dry run's matches) in pages of `batch`, as a call without dry_run would have:
 * for a caller that admits them under the tenant's limits between the dry run and the change.
 * `done` is kept up to date page by page (`through` from `places`, the ids' places), so a caller
 * whose call fails part way knows what changed and where to carry on.
 */
export async function retryMatched(deps: BulkDeps, tenant: string, ids: string[], done: { changed: number } & Pick<BulkDetail, 'byKind' | 'reopened' | 'through'>, statuses?: readonly string[], places?: TaskCursor[]): Promise<void> {
  for (let i = 0; i < ids.length; i += deps.batch) {
    const page = ids.slice(i, i + deps.batch);
    done.changed += await change(deps, 'retry', tenant, page, done, statuses);
    const end = places?.[i + page.length - 1];
    if (end) done.through = end;
  }
}

/**
 * Cancels or retries `ids`, counting what changed by kind (and the steps reopened); how many changed.
 * Only tasks still in `statuses` (the filter's) change: a status is the one thing a page's read
 * checked that may have changed before the rows are locked.
 */
async function change(deps: BulkDeps, action: BulkAction, tenant: string, ids: string[], d: Pick<BulkDetail, 'byKind' | 'reopened'>, statuses?: readonly string[]): Promise<number> {
  let changed = 0;
  const count = (kind: string) => {
    changed++;
    d.byKind[kind] = (d.byKind[kind] ?? 0) + 1;
  };
  if (action === 'cancel') {
    for (const o of await cancelTasks(deps, tenant, ids, { statuses })) {
      if (o.kind === 'cancelled') count('waiting');
      else if (o.kind === 'cancelling') count('running');
    }
  } else {
    const { outcomes, reopened } = await retryTasksCounted(deps, tenant, ids, statuses ?? null, false);
    d.reopened += reopened;
    for (const o of outcomes) if (o.kind === 'retried') count(o.from);
  }
  return changed;
}
