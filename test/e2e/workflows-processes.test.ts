/**
 * Workflows through the built api and two worker processes (AUTH_MODE=keys): a diamond passing its
 * results along, a wide fan-out whose fan-in runs once, each failure policy, resuming by retrying
 * the dead step, cancelling a workflow, cycles and unknown dependencies refused, and another
 * tenant's key finding none of it.
 */
import { processWorldForSuite } from '../support/process-world';
import { waitFor } from '../support/stack';

const world = processWorldForSuite({ label: 'workflows', tenant: 'flows', apis: 1, workers: 2, workerPool: 32 });
const { call } = world;

interface Step {
  key: string;
  task_id: string;
  status: string;
  depends_on: string[];
  cancelled_by: string | null;
}
type Detail = { workflow: { id: string; status: string }; steps: Step[] };

async function submit(body: unknown): Promise<string> {
  const res = await call('POST', '/workflows', body);
  expect(res.status).toBe(201);
  return (res.body.workflow as { id: string }).id;
}

async function ended(id: string): Promise<Detail> {
  return waitFor(async () => {
    const res = await call('GET', `/workflows/${id}`);
    const w = res.body as unknown as Detail;
    return w.workflow.status !== 'running' ? w : null;
  }, 30_000, `workflow ${id} to end`);
}

const stepOf = (w: Detail, k: string) => w.steps.find((s) => s.key === k)!;
const taskOf = async (id: string) => (await call('GET', `/tasks/${id}`)).body;

it('a diamond runs each step after its dependencies and echo passes the results along', async () => {
  const id = await submit({
    name: 'diamond',
    tasks: [
      { key: 'extract', type: 'echo', payload: { rows: 3 } },
      { key: 'left', type: 'echo', payload: { side: 'l' }, depends_on: ['extract'] },
      { key: 'right', type: 'echo', payload: { side: 'r' }, depends_on: ['extract'] },
      { key: 'load', type: 'echo', depends_on: ['left', 'right'] },
    ],
  });
  const w = await ended(id);
  expect(w.workflow.status).toBe('succeeded');
  const extract = { payload: { rows: 3 }, parents: {} };
  const load = await taskOf(stepOf(w, 'load').task_id);
  expect(load).toMatchObject({ workflow_id: id, step_key: 'load', status: 'succeeded' });
  expect(load.result).toEqual({ payload: {}, parents: { left: { payload: { side: 'l' }, parents: { extract } }, right: { payload: { side: 'r' }, parents: { extract } } } });
});

it('a fan-out of 200 across two workers: the fan-in runs exactly once, after every parent', async () => {
  const middle = Array.from({ length: 200 }, (_, i) => ({ key: `m${i}`, type: 'noop', depends_on: ['root'] }));
  const id = await submit({ name: 'fan', tasks: [{ key: 'root', type: 'noop' }, ...middle, { key: 'sink', type: 'echo', depends_on: middle.map((m) => m.key) }] });
  const w = await ended(id);
  expect(w.workflow.status).toBe('succeeded');
  const sink = stepOf(w, 'sink');
  const { rows } = await world.pool.query<{ runs: number; started: Date; last_parent: Date }>(
    `SELECT (SELECT count(*)::int FROM task_runs r WHERE r.task_id = $1) AS runs, (SELECT first_started_at FROM tasks WHERE id = $1) AS started,
            (SELECT max(finished_at) FROM tasks WHERE workflow_id = $2 AND step_key LIKE 'm%') AS last_parent`,
    [sink.task_id, id],
  );
  expect(rows[0]!.runs).toBe(1);
  expect(rows[0]!.started.getTime()).toBeGreaterThanOrEqual(rows[0]!.last_parent.getTime());
  expect(Object.keys((await taskOf(sink.task_id)).result as { parents: object }).length).toBe(2);
});

it('cancel_dependents and continue; then retrying the dead step resumes the workflow without running what succeeded again', async () => {
  const tasks = [
    { key: 'a', type: 'noop' },
    { key: 'b', type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 0, depends_on: ['a'] },
    { key: 'c', type: 'noop', depends_on: ['b'] },
    { key: 'x', type: 'sleeper', payload: { sleep_ms: 300 } },
    { key: 'y', type: 'noop', depends_on: ['x'] },
  ];
  const strict = await ended(await submit({ name: 'strict', on_failure: 'cancel_dependents', tasks }));
  expect(strict.workflow.status).toBe('failed');
  expect(stepOf(strict, 'c')).toMatchObject({ status: 'cancelled', cancelled_by: 'b' });
  // y was waiting on x when b died: no new step starts.
  expect(stepOf(strict, 'y')).toMatchObject({ status: 'cancelled', cancelled_by: 'b' });
  const lenient = await ended(await submit({ name: 'lenient', on_failure: 'continue', tasks }));
  expect(lenient.workflow.status).toBe('failed');
  expect(stepOf(lenient, 'c').status).toBe('cancelled');
  expect(stepOf(lenient, 'y').status).toBe('succeeded');
  // c cannot jump ahead of b; b can be retried, and the workflow resumes.
  expect((await call('POST', `/tasks/${stepOf(strict, 'c').task_id}/retry`)).status).toBe(409);
  expect((await call('POST', `/tasks/${stepOf(strict, 'b').task_id}/retry`)).status).toBe(200);
  const resumed = await ended(strict.workflow.id);
  expect(resumed.workflow.status).toBe('succeeded');
  expect(resumed.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
  const { rows } = await world.pool.query<{ key: string; n: number }>(
    `SELECT t.step_key AS key, count(r.*)::int AS n FROM tasks t LEFT JOIN task_runs r ON r.task_id = t.id WHERE t.workflow_id = $1 GROUP BY t.step_key ORDER BY t.step_key`,
    [strict.workflow.id],
  );
  expect(rows).toEqual([{ key: 'a', n: 1 }, { key: 'b', n: 2 }, { key: 'c', n: 1 }, { key: 'x', n: 1 }, { key: 'y', n: 1 }]);
});

it('cancelling a workflow stops its running step and cancels the rest; cycles and unknown dependencies are refused; other tenants see nothing', async () => {
  const id = await submit({ name: 'slow', tasks: [{ key: 'slow', type: 'sleeper', payload: { sleep_ms: 30_000 } }, { key: 'next', type: 'noop', depends_on: ['slow'] }] });
  await waitFor(async () => ((await call('GET', `/workflows/${id}`)).body as unknown as Detail).steps[0]!.status === 'running' || null, 10_000, 'slow running');
  const cancel = await call('POST', `/workflows/${id}/cancel`);
  expect(cancel.status).toBe(200);
  expect(cancel.body).toMatchObject({ cancelled: 1, cancelling: 1 });
  const w = await ended(id);
  expect(w.workflow.status).toBe('cancelled');
  // Cancelling twice is harmless, as for a task.
  expect(await call('POST', `/workflows/${id}/cancel`)).toMatchObject({ status: 200, body: { cancelled: 0, cancelling: 0 } });

  const cycle = await call('POST', '/workflows', { name: 'loop', tasks: [{ key: 'a', type: 'noop', depends_on: ['c'] }, { key: 'b', type: 'noop', depends_on: ['a'] }, { key: 'c', type: 'noop', depends_on: ['b'] }] });
  expect(cycle.status).toBe(400);
  expect(cycle.body.detail).toMatch(/cycle/);
  const unknown = await call('POST', '/workflows', { name: 'lost', tasks: [{ key: 'a', type: 'noop', depends_on: ['ghost'] }] });
  expect(unknown.status).toBe(400);
  expect(unknown.body.detail).toMatch(/ghost/);
  expect((await world.pool.query(`SELECT count(*)::int AS n FROM workflows WHERE name IN ('loop', 'lost')`)).rows[0].n).toBe(0);

  expect((await call('GET', `/workflows/${id}`, undefined, world.otherKey)).status).toBe(404);
  expect((await call('POST', `/workflows/${id}/cancel`, undefined, world.otherKey)).status).toBe(404);
  expect(((await call('GET', '/workflows', undefined, world.otherKey)).body.workflows as unknown[]).length).toBe(0);
});
