/**
 * Accepting a task: the Postgres transaction decides (new, replay or conflict), then the task is
 * indexed in Redis. A failed Redis push does not undo an accepted task: it stays `queued` in
 * Postgres, an idempotent replay pushes it again, and the reconciler re-indexes it otherwise.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import { maxAttempts } from './backoff';
import type { Priority } from './priority';
import { TaskRow } from './task';
import { createTask } from './task-store';
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

export type SubmitResult = { kind: 'created' | 'replayed'; task: TaskRow; queued: boolean } | { kind: 'conflict'; taskId: string };

export async function submitTask(deps: { pool: Pool; queue: TaskQueue; log: Logger; idempotencyTtlMs: number }, req: SubmitRequest): Promise<SubmitResult> {
  const hash = req.idempotencyKey === null ? null : createHash('sha256').update(req.canonical).digest('hex');
  const out = await createTask(
    deps.pool,
    { id: uuidv7(), type: req.type, priority: req.priority, payload: req.payload, maxRetries: req.maxRetries, idempotencyKey: req.idempotencyKey },
    hash,
    deps.idempotencyTtlMs,
  );
  if (out.kind === 'conflict') return out;
  const t = out.task;
  // A replayed task still waiting for its first attempt may be the one whose push failed.
  const needsPush = out.kind === 'created' || (t.status === 'queued' && t.attempts === 0);
  let queued = true;
  if (needsPush) {
    try {
      await deps.queue.enqueue([
        { id: t.id, type: t.type, priority: t.priority, payload: t.payload, maxAttempts: maxAttempts(t.max_retries), createdAtMs: t.created_at.getTime(), attempts: t.attempts },
      ]);
    } catch (err) {
      queued = false;
      deps.log.error({ err, taskId: t.id }, 'task stored but not queued in Redis; it will be re-indexed');
    }
  }
  return { ...out, queued };
}
