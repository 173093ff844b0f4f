/**
 * Cancel, retry and the bulk redrive through the built api and worker processes (AUTH_MODE=keys):
 * a running sleeper stops within a second of its cancel, a dead task retried runs again, two
 * racing redrives sent to two API replicas run each dead task exactly once more, and another
 * tenant's key can touch none of it.
 */
import { processWorldForSuite } from '../support/process-world';
import { waitFor } from '../support/stack';

const world = processWorldForSuite({ label: 'operator', tenant: 'ops', apis: 2, workers: 1, workerPool: 64 });
const { call } = world;

const statusOf = async (id: string) => (await call('GET', `/tasks/${id}`)).body;

it('a running sleeper is stopped within a second of its cancel; its run says cancelled', async () => {
  const { body: task } = await call('POST', '/tasks', { type: 'sleeper', payload: { sleep_ms: 60_000 } });
  const id = task.id as string;
  await waitFor(async () => (await statusOf(id)).status === 'running', 10_000, 'the sleeper to be running');
  expect((await call('POST', `/tasks/${id}/cancel`, undefined, world.otherKey)).status).toBe(404);
  const res = await call('POST', `/tasks/${id}/cancel`);
  expect(res.status).toBe(202);
  const final = await waitFor(async () => {
    const t = await statusOf(id);
    return t.status === 'cancelled' ? t : null;
  }, 10_000, 'the cancelled status');
  const runs = final.runs as { outcome: string; started_at: string; finished_at: string }[];
  expect(runs.map((r) => r.outcome)).toEqual(['cancelled']);
  // The attempt ended within a second of the cancel request.
  const endedAfterCancel = Date.parse(runs[0]!.finished_at) - Date.parse(final.cancel_requested_at as string);
  expect(endedAfterCancel).toBeLessThan(1000);
  expect((await call('POST', `/tasks/${id}/cancel`)).status).toBe(200);
});

it('a dead task retried runs again with a fresh budget; a queued one cannot be retried', async () => {
  const { body: task } = await call('POST', '/tasks', { type: 'always_fail', max_retries: 1 });
  const id = task.id as string;
  await waitFor(async () => (await statusOf(id)).status === 'dead', 10_000, 'dead');
  expect((await call('POST', `/tasks/${id}/retry`, undefined, world.otherKey)).status).toBe(404);
  expect((await call('POST', `/tasks/${id}/retry`)).status).toBe(200);
  await waitFor(async () => {
    const t = await statusOf(id);
    return t.status === 'dead' && t.attempts === 4;
  }, 10_000, 'dead again after two more attempts');
  expect((await call('POST', `/tasks/${id}/cancel`)).status).toBe(409);
});

it('two redrives racing on two API replicas: 1,000 dead tasks each run exactly once more', async () => {
  const tasks = Array.from({ length: 1000 }, () => ({ type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 0 }));
  const { body } = await call('POST', '/tasks/batch', { tasks });
  const ids = (body.results as { task: { id: string } }[]).map((r) => r.task.id);
  await waitFor(async () => {
    const { rows } = await world.pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'ops' AND status = 'dead' AND type = 'flaky'");
    return rows[0].n === 1000;
  }, 30_000, '1,000 dead tasks');
  // The other tenant's redrive finds none of them.
  expect((await call('POST', '/tasks/retry', { filter: { type: 'flaky' } }, world.otherKey)).body).toMatchObject({ matched: 0, changed: 0 });
  const [a, b] = await Promise.all([0, 1].map((api) => call('POST', '/tasks/retry', { filter: { status: 'dead', type: 'flaky' } }, world.key, api)));
  expect([a!.status, b!.status]).toEqual([200, 200]);
  expect((a!.body.changed as number) + (b!.body.changed as number)).toBe(1000);
  await waitFor(async () => {
    const { rows } = await world.pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'ops' AND status = 'succeeded' AND type = 'flaky'");
    return rows[0].n === 1000;
  }, 30_000, 'every redriven task to succeed');
  const { rows } = await world.pool.query<{ outcomes: string[] }>(
    'SELECT array_agg(outcome ORDER BY attempt) AS outcomes FROM task_runs WHERE task_id = ANY($1::uuid[]) GROUP BY task_id',
    [ids],
  );
  expect(rows).toHaveLength(1000);
  for (const r of rows) expect(r.outcomes).toEqual(['failed', 'succeeded']);
});

it('per-task policy through the processes: echo’s result, a timeout that stops a sleeper, a fixed backoff', async () => {
  const { body: echo } = await call('POST', '/tasks', { type: 'echo', payload: { n: 7 } });
  const { body: slow } = await call('POST', '/tasks', { type: 'sleeper', payload: { sleep_ms: 60_000 }, max_retries: 0, timeout_ms: 300 });
  const { body: failing } = await call('POST', '/tasks', { type: 'always_fail', max_retries: 1, retry: { backoff: 'fixed', base_ms: 400, jitter: 'none' } });
  const final = (id: unknown) =>
    waitFor(async () => {
      const t = await statusOf(id as string);
      return ['succeeded', 'dead'].includes(t.status as string) ? t : null;
    }, 15_000, 'a final status');
  expect(await final(echo.id)).toMatchObject({ status: 'succeeded', result: { payload: { n: 7 } } });
  const timedOut = await final(slow.id);
  expect((timedOut.runs as { error_type: string; error: string }[])[0]).toMatchObject({ error_type: 'TaskTimeoutError', error: 'handler timed out after 300 ms' });
  const runs = (await final(failing.id)).runs as { started_at: string; finished_at: string }[];
  expect(Date.parse(runs[1]!.started_at) - Date.parse(runs[0]!.finished_at)).toBeGreaterThanOrEqual(390);
});
