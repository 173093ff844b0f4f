/**
 * An idempotent replay that read its task still waiting pushes it to Redis again (its first push
 * may have been lost). A worker may run and finish the task between that read and the push: Redis
 * has forgotten it by then, so the push would run it a second time. The push holds a share lock on
 * the task's row, so the worker's outcome write, and Redis forgetting the task after it, wait.
 */
import { endedOrWaiting } from '../support/push-race';
import { stackWithApi, startWorker, waitFor } from '../support/stack';
import type { Worker } from '../../services/worker/worker';

const fx = stackWithApi();
let worker: Worker | undefined;
afterAll(async () => {
  await worker?.stop(0);
});
const post = (body: unknown) => fx.post('/tasks', body);

it('a replay that read the task waiting does not run it again once a worker has run it meanwhile', async () => {
  const first = await post({ type: 'noop', idempotency_key: 'late-replay' });
  expect(first.status).toBe(201);
  const { id } = (await first.json()) as { id: string };
  const ran: string[] = [];
  const real = fx.stack.queue.enqueue.bind(fx.stack.queue);
  let pushed!: (v: unknown) => void;
  const replayPushed = new Promise((r) => (pushed = r));
  // The replay has read the task queued with no attempt; before its push lands, a worker leases it,
  // runs it and writes its outcome: either all the way (Redis forgets it) or until that write waits.
  const spy = jest.spyOn(fx.stack.queue, 'enqueue').mockImplementationOnce(async (items) => {
    ({ worker } = startWorker(fx.stack, { handlers: { noop: async (ctx) => void ran.push(ctx.id) } }));
    await endedOrWaiting(fx.stack, id);
    const res = await real(items);
    pushed(res);
    return res;
  });
  const replay = await post({ type: 'noop', idempotency_key: 'late-replay' });
  expect(replay.status).toBe(200);
  // (The answer does not wait for the push.)
  await replayPushed;
  expect(spy).toHaveBeenCalledTimes(1);
  await waitFor(async () => (await fx.stack.pool.query("SELECT 1 FROM tasks WHERE id = $1 AND status = 'succeeded'", [id])).rowCount === 1, 10_000, 'the task to succeed');
  // Whatever Redis holds of it once the worker is done: nothing, if the push left it alone.
  await waitFor(async () => (await fx.stack.inspect.hexists(fx.stack.queue.keys.meta, id)) === 0 || ran.length > 1, 10_000, 'Redis to forget the task');
  await worker!.stop(5000);
  expect(ran).toEqual([id]);
  const runs = await fx.stack.pool.query('SELECT attempt FROM task_runs WHERE task_id = $1', [id]);
  expect(runs.rowCount).toBe(1);
});
