/**
 * An operator's retry commits the task waiting again, then pushes it to Redis. Another push may
 * index it in between (an idempotent replay of its request, which reads it queued with no attempt),
 * and a worker run and end it before the retry's push lands: Redis has forgotten it then, and the
 * push would index it afresh, to run a second time. The push holds a share lock on the rows still
 * waiting since the retry, so a worker's outcome write waits for it.
 */
import type { TaskQueue } from '../../services/core/queue/queue';
import { endedOrWaiting, leaseAndRun } from '../support/push-race';
import { stackWithApi, waitFor } from '../support/stack';

const fx = stackWithApi();
afterAll(() => jest.restoreAllMocks());
const post = fx.post;

it('a retry whose push comes after a replay indexed the task and a worker ran and ended it does not index it again', async () => {
  const first = await post('/tasks', { type: 'noop', idempotency_key: 'retry-race' });
  expect(first.status).toBe(201);
  const { id } = (await first.json()) as { id: string };
  // Cancelled while waiting: no attempt.
  expect((await post(`/tasks/${id}/cancel`)).status).toBeLessThan(300);
  expect((await fx.stack.pool.query('SELECT status::text FROM tasks WHERE id = $1', [id])).rows[0].status).toBe('cancelled');
  const keys = fx.stack.keysOf('default');
  const queue = fx.stack.queue as TaskQueue;
  const requeue = queue.requeue.bind(queue);
  let ran: Promise<void> | undefined;
  jest.spyOn(queue, 'requeue').mockImplementationOnce(async (items) => {
    // The retry has committed; before its push lands, a replay indexes the task and a worker runs it.
    const replay = await post('/tasks', { type: 'noop', idempotency_key: 'retry-race' });
    expect(replay.status).toBe(200);
    await waitFor(async () => (await fx.stack.inspect.hexists(keys.meta, id)) === 1, 10_000, 'the replay to index the task');
    ({ ran } = await leaseAndRun(fx.stack, id));
    // Its outcome is written all the way (Redis forgets it), or until the write waits for a lock.
    await endedOrWaiting(fx.stack, id);
    return requeue(items);
  });
  const retried = await post(`/tasks/${id}/retry`);
  expect(retried.status).toBe(200);
  await ran;
  expect((await fx.stack.pool.query('SELECT status::text FROM tasks WHERE id = $1', [id])).rows[0].status).toBe('succeeded');
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(0);
  expect(await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w2' })).toEqual([]);
}, 30_000);
