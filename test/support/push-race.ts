/**
 * The worker's side of the push races (a push to Redis landing after a worker ran and ended the
 * task): a worker's run of a task, and the wait until it ended or its outcome write waits on a
 * push's share lock.
 */
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import { Stack, waitFor } from './stack';

/** Leases `id` (the only task ready) as worker w1 and runs it to success as a worker does: its outcome to Postgres, then Redis told. */
export async function leaseAndRun(stack: Stack, id: string): Promise<{ ran: Promise<void> }> {
  const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect(l!.message.id).toBe(id);
  const ran = (async () => {
    await recordOutcomes(stack.pool, [{ id, token: l!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0 }]);
    await stack.queue.finish([{ id, token: l!.token, priority: 'default', outcome: 'succeeded', settleAttempts: 1 }]);
  })();
  return { ran };
}

/** Resolves once the task `id` (of the default tenant) succeeded and Redis forgot it, or a query of the database waits for a lock. */
export function endedOrWaiting(stack: Stack, id: string): Promise<boolean> {
  return waitFor(
    async () =>
      ((await stack.pool.query("SELECT 1 FROM tasks WHERE id = $1 AND status = 'succeeded'", [id])).rowCount === 1 && (await stack.inspect.hexists(stack.keysOf('default').meta, id)) === 0) ||
      (await stack.pool.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rowCount! > 0,
    10_000,
    'the task to be run and forgotten, or its outcome write to wait',
  );
}
