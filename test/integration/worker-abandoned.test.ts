/**
 * Handlers that ignore their abort: a timed-out attempt frees its slot while its handler runs on.
 * Such handlers (and what they hold) are bounded by WORKER_MAX_ABANDONED, not by how many tasks
 * of their kind are waiting.
 */
import { submitTask } from '../../services/core/tasks/submit';
import { Stack, createStack, silentLog, startWorker, taskStatus, waitFor } from '../support/stack';
import type { Worker } from '../../services/worker/worker';

let stack: Stack;
let worker: Worker | null = null;

beforeEach(async () => {
  stack = await createStack({ POLL_INTERVAL_MS: 10, REAPER_SCAN_INTERVAL_MS: 50 });
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
  await stack.close();
});

it('handlers that ignore their abort pile up to WORKER_POOL + WORKER_MAX_ABANDONED at most, and leasing resumes as they end', async () => {
  let live = 0;
  let most = 0;
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const handlers = {
    stubborn: async () => {
      most = Math.max(most, ++live);
      // Never looks at its signal (a call with no timeout of its own).
      await released;
      live--;
    },
  };
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) {
    const res = await submitTask(
      { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
      { type: 'stubborn', priority: 'default', payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' },
    );
    if (res.kind === 'conflict') throw new Error('unexpected conflict');
    ids.push(res.task.id);
  }
  let metrics;
  ({ worker, metrics } = startWorker(stack, { handlers, cfg: { WORKER_POOL: 2, WORKER_MAX_ABANDONED: 4, TASK_TIMEOUT_MS: 50 } }));
  await new Promise((r) => setTimeout(r, 1500));
  expect(most).toBe(6);
  expect((await metrics.abandoned.get()).values[0]?.value).toBeGreaterThanOrEqual(4);
  release();
  // The rest are leased once the abandoned handlers end (and, released, succeed).
  for (const id of ids) await waitFor(async () => (['dead', 'succeeded'].includes((await taskStatus(stack.pool, id)).status) ? true : null), 20_000);
  expect(most).toBeLessThanOrEqual(6);
});
