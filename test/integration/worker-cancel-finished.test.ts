/**
 * Attempts that ended while their outcome is still being written keep their leases until it
 * lands: one whose cancel arrives after its handler succeeded (the success stands: a cancel does
 * not win over a success), and one aborted at its timeout (its failure, not a lost lease, counts).
 */
import { submitTask } from '../../services/core/tasks/submit';
import { fetch } from '../support/contract';
import { gatedPool } from '../support/gated-pool';
import { runsOf, silentLog, stackWithApi, taskStatus, waitFor } from '../support/stack';

const fx = stackWithApi({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 }, { each: true });

it('a cancel of a task whose handler succeeded while its outcome waits to be written leaves the lease extended and the success recorded', async () => {
  const gated = gatedPool(fx.stack.pool, 'record-outcomes');
  const handlers = { slow: async () => void (await new Promise((r) => setTimeout(r, 300))) };
  // Started long enough to be recorded running, so the cancel is a request to a running attempt.
  fx.startWorker({ handlers, pool: gated.pool, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200, START_RECORD_DELAY_MS: 50 } });
  const res = await submitTask(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type: 'slow', priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  await waitFor(async () => gated.stats.running > 0 || null, 5000, 'the outcome write');
  const cancel = await fetch(`${fx.api.url}/tasks/${id}/cancel`, { method: 'POST' });
  expect(cancel.status).toBe(202);
  try {
    // Past the visibility timeout: a lease no longer extended would have been reaped by now.
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    gated.release();
  }
  const t = await waitFor(async () => {
    const s = await taskStatus(fx.stack.pool, id);
    return ['succeeded', 'cancelled'].includes(s.status) ? s : null;
  });
  expect(t).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
});

it('an attempt aborted at its timeout keeps its lease while its failure is written, and the failure is what counts', async () => {
  const gated = gatedPool(fx.stack.pool, 'record-outcomes');
  // A handler that stops when told (the timeout fires its signal).
  const handlers = {
    stuck: ({ signal }: { signal: AbortSignal }) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
  };
  fx.startWorker({ handlers, pool: gated.pool, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200, TASK_TIMEOUT_MS: 100, RETRY_BASE_MS: 60_000, RETRY_MAX_MS: 60_000 } });
  const res = await submitTask(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type: 'stuck', priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  await waitFor(async () => gated.stats.running > 0 || null, 5000, 'the outcome write');
  try {
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    gated.release();
  }
  const t = await waitFor(async () => {
    const s = await taskStatus(fx.stack.pool, id);
    return s.status === 'retrying' ? s : null;
  });
  // Waiting out its backoff, the timeout recorded; not reaped and run again at once as a lost lease.
  expect(t).toMatchObject({ status: 'retrying', attempts: 1 });
  expect(t.last_error).toMatch(/timed out after 100 ms/);
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['failed']);
});
