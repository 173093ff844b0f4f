/**
 * pushUnderShareLocks: the one way a task read waiting is pushed while a worker may run it. A row
 * locked by a writer is waited for and read again; a push that stalls lets its locks go and fails
 * (the same for every caller: the reconciler backs it up), so a stalled Redis never holds up the
 * outcome writes that wait for those locks.
 */
import { pushUnderShareLocks } from '../../services/core/db/share-locked-push';
import { stackWithApi, waitFor } from '../support/stack';

const fx = stackWithApi();

async function submit(): Promise<string> {
  const res = await fetch(`${fx.api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop' }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const waitingForLock = async () =>
  (await fx.stack.pool.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rowCount! > 0;

it('waits for a row a writer holds, then leaves it out once the writer ended it', async () => {
  const [a, b] = [await submit(), await submit()];
  const writer = await fx.stack.pool.connect();
  try {
    await writer.query('BEGIN');
    await writer.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [a]);
    const pushed: string[][] = [];
    const done = pushUnderShareLocks(fx.stack.pool, 'test push', async (tx) => {
      const still = await tx.lockStill([a, b], `status = 'queued'`);
      pushed.push([...still].sort());
      await tx.bounded(Promise.resolve());
    });
    await waitFor(waitingForLock, 5000, 'the push to wait for the writer');
    await writer.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [a]);
    await writer.query('COMMIT');
    await done;
    expect(pushed).toEqual([[b]]);
  } finally {
    writer.release();
  }
});

it('a push that stalls past its timeout fails naming it, and lets its locks go', async () => {
  const id = await submit();
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  const outcome = pushUnderShareLocks(
    fx.stack.pool,
    'test push',
    async (tx) => {
      expect([...(await tx.lockStill([id], `status = 'queued'`))]).toEqual([id]);
      await tx.bounded(stalled);
    },
    300,
  );
  await expect(outcome).rejects.toThrow(/test push: no answer within 300 ms/);
  // An outcome write that needs the row is not held up by the stalled push.
  const writer = await fx.stack.pool.connect();
  try {
    await writer.query("SET lock_timeout = '1s'");
    await writer.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [id]);
  } finally {
    writer.release();
    release();
  }
});

it('a row held past the lock wait fails the push rather than waiting on', async () => {
  const id = await submit();
  const writer = await fx.stack.pool.connect();
  try {
    await writer.query('BEGIN');
    await writer.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [id]);
    const push = jest.fn(async () => undefined);
    await expect(
      pushUnderShareLocks(fx.stack.pool, 'test push', async (tx) => {
        await tx.lockStill([id], `status = 'queued'`);
        await tx.bounded(push());
      }),
    ).rejects.toMatchObject({ code: '55P03' });
    expect(push).not.toHaveBeenCalled();
  } finally {
    await writer.query('ROLLBACK');
    writer.release();
  }
});
