/**
 * The API's connection ends after Postgres committed a batch of new tasks but before the answer
 * reached the API: the tasks exist, so their requests are answered 201 with them (and the tasks
 * queued), not 503, which would leave tasks nobody was told about and make a client retrying
 * without a key create them twice. A write that did not commit is still an error.
 */
import type { Pool, PoolClient } from 'pg';
import { createStack, Stack, startApi, waitFor } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

const lost = () => new Error('Connection terminated unexpectedly');

/** A pool whose next create commits in Postgres and then loses its answer (`after`), or fails before it runs. */
function losingPool(pool: Pool, mode: 'after' | 'before'): { pool: Pool; armed: () => boolean } {
  let armed = true;
  const fire = async <T>(run: () => Promise<T>): Promise<T> => {
    armed = false;
    if (mode === 'before') throw lost();
    await run();
    throw lost();
  };
  const isCreate = (q: unknown) => typeof q === 'object' && q !== null && String((q as { name?: string }).name ?? '').startsWith('create-tasks-unkeyed');
  const proxied = new Proxy(pool, {
    get: (target, prop, receiver) => {
      if (prop === 'query') {
        return (q: unknown, ...rest: unknown[]) => {
          const run = () => (target.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest);
          return armed && isCreate(q) ? fire(run) : run();
        };
      }
      if (prop === 'connect') {
        return async () => {
          const client = await target.connect();
          return new Proxy(client, {
            get: (c, p, r) =>
              p === 'query'
                ? (q: unknown, ...rest: unknown[]) => {
                    const run = () => (c.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest);
                    return armed && q === 'COMMIT' ? fire(run) : run();
                  }
                : Reflect.get(c, p, r),
          }) as PoolClient;
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  }) as Pool;
  return { pool: proxied, armed: () => armed };
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const count = async () => (await stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n as number;

it.each([
  ['a single task without a key', '/tasks', { type: 'noop' }, {}],
  ['a batch without keys', '/tasks/batch', { tasks: [{ type: 'noop' }, { type: 'noop' }] }, {}],
  ['a task with a key (its transaction\'s COMMIT)', '/tasks', { type: 'noop' }, { 'Idempotency-Key': 'lost-answer-1' }],
])('%s committed behind a lost answer is answered as created, and queued', async (_, path, body, headers) => {
  const losing = losingPool(stack.pool, 'after');
  const api = await startApi({ ...stack, pool: losing.pool });
  try {
    const res = await post(api.url, path, body, headers);
    expect(losing.armed()).toBe(false);
    let ids: string[];
    if (path === '/tasks') {
      expect(res.status).toBe(201);
      ids = [res.body.id as string];
    } else {
      expect(res.status).toBe(200);
      const results = res.body.results as { status: number; task: { id: string } }[];
      expect(results.map((r) => r.status)).toEqual([201, 201]);
      ids = results.map((r) => r.task.id);
    }
    expect(await count()).toBe(ids.length);
    for (const id of ids) expect((await stack.pool.query('SELECT status FROM tasks WHERE id = $1', [id])).rows[0].status).toBe('queued');
    // Queued in Redis too: a worker can lease them.
    await waitFor(async () => (await stack.queue.stats()).ready.default === ids.length || null, 5000, 'the tasks in Redis');
  } finally {
    await api.server.stop();
  }
});

it('a create that failed before Postgres ran it is still an error (503), with nothing stored', async () => {
  const losing = losingPool(stack.pool, 'before');
  const api = await startApi({ ...stack, pool: losing.pool });
  try {
    expect((await post(api.url, '/tasks', { type: 'noop' })).status).toBe(503);
    expect(await count()).toBe(0);
  } finally {
    await api.server.stop();
  }
});
