/**
 * Accepting tasks: the Postgres transaction decides (new, replay or conflict), then the tasks are
 * indexed in Redis with one script call. A failed Redis push does not undo an accepted task: it
 * stays `queued` in Postgres, an idempotent replay pushes it again, and the reconciler re-indexes
 * it otherwise.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import { maxAttempts } from './backoff';
import type { Priority } from './priority';
import { CreateOutcome, CreateRequest, createTasks } from './task-store';
import { uuidv7 } from './uuid';

export interface SubmitRequest {
  type: string;
  priority: Priority;
  payload: unknown;
  maxRetries: number;
  idempotencyKey: string | null;
  /** Canonical JSON of the request, hashed to tell a replay from a conflict. */
  canonical: string;
}

/** New, replayed (the key's earlier task), or a conflict (the key was used with another request). */
export type SubmitResult = CreateOutcome;

export interface SubmitDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  idempotencyTtlMs: number;
}

export async function submitTask(deps: SubmitDeps, req: SubmitRequest): Promise<SubmitResult> {
  const [res] = await submitTasks(deps, [req]);
  return res!;
}

/**
 * Submits many tasks: one Postgres statement per round (see storeTasks), then one Redis call.
 */
export async function submitTasks(deps: SubmitDeps, reqs: SubmitRequest[]): Promise<SubmitResult[]> {
  const outcomes = await storeTasks(deps, reqs);
  await indexStored(deps, outcomes);
  return outcomes;
}

/**
 * The Postgres half of a submission: one statement per round. A key repeated within the call goes
 * to a later round, so its second use sees the first as a replay or conflict.
 */
export async function storeTasks(deps: SubmitDeps, reqs: SubmitRequest[]): Promise<CreateOutcome[]> {
  const outcomes: CreateOutcome[] = new Array(reqs.length);
  for (const round of roundsByKey(reqs)) {
    const creates: CreateRequest[] = round.map((i) => {
      const r = reqs[i]!;
      return {
        task: { id: uuidv7(), type: r.type, priority: r.priority, payload: r.payload, maxRetries: r.maxRetries, idempotencyKey: r.idempotencyKey },
        requestHash: r.idempotencyKey === null ? null : createHash('sha256').update(r.canonical).digest('hex'),
      };
    });
    const stored = await createTasks(deps.pool, creates, deps.idempotencyTtlMs);
    round.forEach((i, j) => (outcomes[i] = stored[j]!));
  }
  return outcomes;
}

/**
 * The Redis half: indexes what storeTasks created (and replays still waiting for a first attempt)
 * with one script call. Never throws: a failed push leaves the task to the reconciler.
 * Calls on one connection reach Redis in call order, so batches stored in order are indexed in order.
 */
export async function indexStored(deps: SubmitDeps, outcomes: CreateOutcome[]): Promise<void> {
  const push = outcomes.map((o) => o.kind === 'created' || (o.kind === 'replayed' && o.task.status === 'queued' && o.task.attempts === 0));
  const items = outcomes.flatMap((o, j) => (push[j] && o.kind !== 'conflict' ? [o.task] : []));
  if (items.length === 0) return;
  try {
    await deps.queue.enqueue(
      items.map((t) => ({ id: t.id, type: t.type, priority: t.priority, payload: t.payload, maxAttempts: maxAttempts(t.max_retries), createdAtMs: t.created_at.getTime(), attempts: t.attempts })),
    );
  } catch (err) {
    deps.log.error({ err, count: items.length, taskIds: items.slice(0, 10).map((t) => t.id) }, 'tasks stored but not queued in Redis; the reconciler will queue them');
  }
}

/** Index lists whose idempotency keys are unique within each list, in request order. */
function roundsByKey(reqs: SubmitRequest[]): number[][] {
  const rounds: number[][] = [];
  const seen = new Map<string, number>();
  reqs.forEach((r, i) => {
    const n = r.idempotencyKey === null ? 0 : (seen.get(r.idempotencyKey) ?? 0);
    if (r.idempotencyKey !== null) seen.set(r.idempotencyKey, n + 1);
    (rounds[n] ??= []).push(i);
  });
  return rounds;
}
