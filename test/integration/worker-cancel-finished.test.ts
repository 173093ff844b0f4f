/**
 * An operator's cancel that arrives after a handler succeeded, while its outcome is still being
 * written: the success stands (a cancel does not win over a success). The attempt's lease must be
 * extended until that write lands, whichever way the worker hears of the cancel.
 */
import { submitTask } from '../../services/core/tasks/submit';
import type { Worker } from '../../services/worker/worker';
import { fetch } from '../support/contract';
import { gatedPool } from '../support/gated-pool';
import { createStack, runsOf, silentLog, Stack, startApi, startWorker, taskStatus, waitFor } from '../support/stack';

let stack: Stack;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: Worker | null = null;

beforeEach(async () => {
  stack = await createStack({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
  api = await startApi(stack);
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
  await api.server.stop();
  await stack.close();
});

it('a cancel of a task whose handler succeeded while its outcome waits to be written leaves the lease extended and the success recorded', async () => {
  const gated = gatedPool(stack.pool, 'record-outcomes');
  const handlers = { slow: async () => void (await new Promise((r) => setTimeout(r, 300))) };
  // Started long enough to be recorded running, so the cancel is a request to a running attempt.
  ({ worker } = startWorker(stack, { handlers, pool: gated.pool, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200, START_RECORD_DELAY_MS: 50 } }));
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type: 'slow', priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  await waitFor(async () => gated.stats.running > 0 || null, 5000, 'the outcome write');
  const cancel = await fetch(`${api.url}/tasks/${id}/cancel`, { method: 'POST' });
  expect(cancel.status).toBe(202);
  try {
    // Past the visibility timeout: a lease no longer extended would have been reaped by now.
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    gated.release();
  }
  const t = await waitFor(async () => {
    const s = await taskStatus(stack.pool, id);
    return ['succeeded', 'cancelled'].includes(s.status) ? s : null;
  });
  expect(t).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
});
