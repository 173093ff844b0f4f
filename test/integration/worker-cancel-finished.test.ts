/**
 * Attempts that ended while their outcome is still being written keep their leases until it
 * lands: one whose cancel arrives after its handler succeeded (the success stands: a cancel does
 * not win over a success), and one aborted at its timeout (its failure, not a lost lease, counts).
 */
import { submitTask } from '../../services/core/tasks/submit';
import { fetch } from '../support/contract';
import { GatedPool, gatedPool } from '../support/gated-pool';
import { runsOf, silentLog, stackWithApi, taskStatus, waitFor } from '../support/stack';

const fx = stackWithApi({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 }, { each: true });

/** Submits a task of `type` and resolves with its id once its outcome write waits at the gate. */
async function submitUntilGated(type: string, gated: GatedPool): Promise<string> {
  const res = await submitTask(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type, priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  await waitFor(async () => gated.stats.running > 0 || null, 5000, 'the outcome write');
  return res.task.id;
}

/** Holds the outcome write past the visibility timeout (a lease no longer extended would have been reaped by then), then lets it go. */
async function holdGate(gated: GatedPool): Promise<void> {
  try {
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    gated.release();
  }
}

/** The task's status once `ended` accepts it. */
const statusOnce = (id: string, ended: (status: string) => boolean) =>
  waitFor(async () => {
    const s = await taskStatus(fx.stack.pool, id);
    return ended(s.status) ? s : null;
  });

it('a cancel of a task whose handler succeeded while its outcome waits to be written leaves the lease extended and the success recorded', async () => {
  const gated = gatedPool(fx.stack.pool, 'record-outcomes');
  const handlers = { slow: async () => void (await new Promise((r) => setTimeout(r, 300))) };
  // Started long enough to be recorded running, so the cancel is a request to a running attempt.
  fx.startWorker({ handlers, pool: gated.pool, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200, START_RECORD_DELAY_MS: 50 } });
  const id = await submitUntilGated('slow', gated);
  const cancel = await fetch(`${fx.api.url}/tasks/${id}/cancel`, { method: 'POST' });
  expect(cancel.status).toBe(202);
  await holdGate(gated);
  const t = await statusOnce(id, (s) => ['succeeded', 'cancelled'].includes(s));
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
  const id = await submitUntilGated('stuck', gated);
  await holdGate(gated);
  const t = await statusOnce(id, (s) => s === 'retrying');
  // Waiting out its backoff, the timeout recorded; not reaped and run again at once as a lost lease.
  expect(t).toMatchObject({ status: 'retrying', attempts: 1 });
  expect(t.last_error).toMatch(/timed out after 100 ms/);
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['failed']);
});
