/**
 * Accepting tasks: the Postgres transaction decides (new, replay or conflict), then the tasks are
 * indexed in Redis with one script call. A failed Redis push does not undo an accepted task: it
 * stays `queued` in Postgres, an idempotent replay pushes it again, and the reconciler re-indexes
 * it otherwise.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import { throttleFor } from '../observability/log-throttle';
import { LOCKED_PUSH_TIMEOUT_MS, pushUnderShareLocks } from '../db/share-locked-push';
import { withTimeout } from '../process/with-timeout';
import type { EnqueueItem, TaskQueue } from '../queue/queue';
import { maxAttempts, RetryPolicy } from './backoff';
import type { Priority } from './priority';
import { CreateOutcome, CreateRequest, createTasks, priorOutcomes, sameRequest, scopedKey } from './task-store';
import { uuidv7 } from './uuid';
import { SETTINGS } from '../config/config';
import type { TaskRow } from './task';

export interface SubmitRequest {
  /** The tenant the task belongs to; idempotency keys are unique per tenant. */
  tenant: string;
  type: string;
  priority: Priority;
  payload: unknown;
  maxRetries: number;
  idempotencyKey: string | null;
  /** Canonical JSON of the request, hashed to tell a replay from a conflict. */
  canonical: string;
  /**
   * The canonical JSON with another max_retries, when the request left it out (it then took the
   * API's default): the same request, whatever default the key's task was made with.
   */
  canonicalWith?: (maxRetries: number) => string;
  /** JSON.stringify(payload), when the caller has it already (the API does: it sizes batches by it). */
  payloadJson?: string;
  /** The task's own retry policy and timeout (absent: the handler's or the environment's). */
  retry?: RetryPolicy | null;
  timeoutMs?: number | null;
  /** A delayed task's due time (absent or null: queued at once). */
  runAt?: Date | null;
}

/** New, replayed (the key's earlier task), or a conflict (the key was used with another request). */
export type SubmitResult = CreateOutcome;

export interface SubmitDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  idempotencyTtlMs: number;
  /** Delayed tasks due within this long are indexed in Redis at once; later ones are left to the loader (DELAYED_HORIZON_MS). */
  delayedHorizonMs?: number;
}

const DEFAULT_HORIZON_MS = SETTINGS.DELAYED_HORIZON_MS.parse(SETTINGS.DELAYED_HORIZON_MS.default);

export async function submitTask(deps: SubmitDeps, req: SubmitRequest): Promise<SubmitResult> {
  const [res] = await submitTasks(deps, [req]);
  return res!;
}

/**
 * Submits many tasks: one atomic Postgres write (see storeTasks), then one Redis call.
 */
export async function submitTasks(deps: SubmitDeps, reqs: SubmitRequest[]): Promise<SubmitResult[]> {
  const outcomes = await storeTasks(deps, reqs);
  await indexStored(deps, outcomes, reqs);
  return outcomes;
}

/**
 * The Postgres half of a submission, all or nothing (createTasks): when it throws, no task of the
 * call was created. A key repeated within the call costs nothing more: only its first use goes to
 * Postgres, and each later use is answered as the next request with that key would be (the same
 * request replays the task, another one conflicts).
 */
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
/** What a key's stored hash is compared with (see sameRequest). */
const hashesOf = (r: SubmitRequest) => ({ requestHash: sha256(r.canonical), hashWith: r.canonicalWith ? (m: number) => sha256(r.canonicalWith!(m)) : undefined });

export async function storeTasks(deps: SubmitDeps, reqs: SubmitRequest[]): Promise<CreateOutcome[]> {
  const hashed = reqs.map((r) => (r.idempotencyKey === null ? null : hashesOf(r)));
  const hashes = hashed.map((h) => h?.requestHash ?? null);
  const firstUse = new Map<string, number>();
  const sent: number[] = [];
  const creates: CreateRequest[] = [];
  const keys = reqs.map((r) => (r.idempotencyKey === null ? null : scopedKey(r)));
  reqs.forEach((r, i) => {
    const key = keys[i]!;
    if (key !== null) {
      if (firstUse.has(key)) return;
      firstUse.set(key, i);
    }
    sent.push(i);
    creates.push({
      task: { id: uuidv7(), tenant: r.tenant, type: r.type, priority: r.priority, payload: r.payload, maxRetries: r.maxRetries, idempotencyKey: r.idempotencyKey, retry: r.retry ?? null, timeoutMs: r.timeoutMs ?? null, runAt: r.runAt ?? null },
      requestHash: hashes[i]!,
      hashWith: hashed[i]?.hashWith,
      payloadJson: r.payloadJson,
    });
  });
  const stored = await createTasks(deps.pool, creates, deps.idempotencyTtlMs);
  const outcomes: CreateOutcome[] = new Array(reqs.length);
  sent.forEach((i, j) => (outcomes[i] = stored[j]!));
  if (sent.length < reqs.length) {
    reqs.forEach((_, i) => {
      if (outcomes[i] !== undefined) return;
      const firstIndex = firstUse.get(keys[i]!)!;
      const first = outcomes[firstIndex]!;
      // The request the key is stored with: the first use's, unless that one conflicted.
      // (A replay of a request that left max_retries out matched the hash with its task's max_retries.)
      const firstWith = hashed[firstIndex]!.hashWith;
      const task = first.task;
      const storedHash = first.kind === 'conflict' ? first.requestHash : first.kind === 'replayed' && firstWith ? firstWith(task.max_retries) : hashes[firstIndex];
      outcomes[i] = sameRequest(hashed[i]!, storedHash!, task) ? { kind: 'replayed', task } : { kind: 'conflict', taskId: task.id, task, requestHash: storedHash! };
    });
  }
  return outcomes;
}

/**
 * The answers these requests would get as replays (see priorOutcomes), or null when one of them
 * would create a task (it has no key, or its key is not in use).
 */
export async function replaysOf(pool: Pool, reqs: SubmitRequest[]): Promise<CreateOutcome[] | null> {
  if (reqs.length === 0 || reqs.some((r) => r.idempotencyKey === null)) return null;
  const prior = await priorOutcomes(
    pool,
    reqs.map((r) => ({ tenant: r.tenant, idempotencyKey: r.idempotencyKey!, ...hashesOf(r) })),
  );
  return prior.every((o) => o !== null) ? (prior as CreateOutcome[]) : null;
}

/**
 * The Redis half: indexes what storeTasks created (and replays still waiting for a first attempt)
 * with one script call. Never throws: a failed push leaves the task to the reconciler.
 * Calls on one connection reach Redis in call order, so batches stored in order are indexed in order.
 */
export async function indexStored(deps: SubmitDeps, outcomes: CreateOutcome[], reqs?: SubmitRequest[]): Promise<void> {
  // A task answered twice in one call (a key repeated in a batch) is pushed once.
  const seen = new Set<string>();
  const horizon = Date.now() + (deps.delayedHorizonMs ?? DEFAULT_HORIZON_MS);
  const created: EnqueueItem[] = [];
  const replayed: EnqueueItem[] = [];
  outcomes.forEach((o, i) => {
    const t = o.task;
    const waiting = o.kind === 'created' || (o.kind === 'replayed' && (t.status === 'queued' || t.status === 'scheduled') && t.attempts === 0);
    // A delayed task due beyond the horizon waits in Postgres; the workers' loader brings it in.
    if (!waiting || seen.has(t.id) || (t.status === 'scheduled' && t.run_at!.getTime() > horizon)) return;
    seen.add(t.id);
    // A created task's payload is the request's: its JSON text is reused rather than built again.
    if (o.kind === 'created') created.push(enqueueItem(t, reqs?.[i]?.payloadJson));
    else replayed.push(enqueueItem(t));
  });
  await Promise.all([created.length > 0 && pushStored(deps, created), replayed.length > 0 && pushReplayed(deps, replayed)]);
}

/**
 * A replay read its task waiting, but a worker may have run it since (its start is recorded late):
 * the push holds share locks on the tasks still waiting and never started (pushUnderShareLocks).
 * A push that failed or took too long is left to the reconciler.
 */
async function pushReplayed(deps: SubmitDeps, items: EnqueueItem[]): Promise<void> {
  try {
    await pushUnderShareLocks(deps.pool, 'pushing replayed tasks', async (tx) => {
      const still = await tx.lockStill(
        items.map((it) => it.id),
        `status IN ('queued', 'scheduled') AND attempts = 0`,
      );
      const push = items.filter((it) => still.has(it.id));
      if (push.length > 0) await tx.bounded(deps.queue.enqueue(push));
    });
  } catch (err) {
    logPushFailed(deps, err, items);
  }
}

/**
 * One Redis call; never throws. Bounded as the replays' push is: a batch request (and shutdown,
 * which waits for pushes) must not wait on a stalled partition; the reconciler queues what is late.
 */
async function pushStored(deps: SubmitDeps, items: EnqueueItem[]): Promise<void> {
  try {
    await withTimeout(deps.queue.enqueue(items), LOCKED_PUSH_TIMEOUT_MS, 'pushing stored tasks: no answer');
  } catch (err) {
    logPushFailed(deps, err, items);
  }
}

function logPushFailed(deps: SubmitDeps, err: unknown, items: EnqueueItem[]): void {
  // While Redis is away every request meets this: told once per interval, not per request.
  const held = throttleFor(deps.log, 'push-failed').take(items.length);
  if (held) deps.log.error({ err, count: items.length, taskIds: items.slice(0, 10).map((t) => t.id), ...held }, 'tasks stored but not queued in Redis; the reconciler will queue them');
}

/** What the queue holds of a waiting task (a scheduled one goes in by its due time). */
export function enqueueItem(t: TaskRow, payloadJson?: string): EnqueueItem {
  const item: EnqueueItem = { id: t.id, tenant: t.tenant, type: t.type, priority: t.priority, payload: t.payload, payloadJson, maxAttempts: maxAttempts(t.max_retries), createdAtMs: t.created_at.getTime(), attempts: t.attempts };
  if (t.retry) item.retry = t.retry;
  if (t.timeout_ms) item.timeoutMs = t.timeout_ms;
  if (t.status === 'scheduled' && t.run_at) item.dueAtMs = item.runAtMs = t.run_at.getTime();
  if (t.step_key) item.stepKey = t.step_key;
  return item;
}
