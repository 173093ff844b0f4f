/**
 * A query parameter a route does not know is refused with 400 naming it, not ignored: a client
 * that writes `GET /queues?priority=high` must not take the whole answer for a filtered one, and a
 * POST with one creates nothing.
 */
import { stackWithApi } from '../support/stack';

const fx = stackWithApi();
const get = (path: string) => fetch(`${fx.api.url}${path}`);

it.each(['/queues?priority=high', '/admin/tenants?limit=5', '/admin/keys?scope=admin', '/tasks/0190b6a4-55d0-7000-8000-000000000000?fields=id', '/workflows/0190b6a4-55d0-7000-8000-000000000000?x=1', '/schedules?bogus=1'])(
  'GET %s is a 400 naming the parameter',
  async (path) => {
    const res = await get(path);
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { errors: { field: string; message: string }[] };
    expect(problem.errors[0]).toEqual({ field: new URL(path, 'http://x').searchParams.keys().next().value, message: 'is not a known parameter' });
  },
);

it('the tenant parameter is known to every route with a scope', async () => {
  expect((await get('/queues?tenant=default')).status).toBe(200);
  expect((await get('/admin/tenants?tenant=default')).status).toBe(200);
});

it('a POST with an unknown parameter creates nothing', async () => {
  const res = await fx.post('/tasks?priority=high', { type: 'noop' });
  expect(res.status).toBe(400);
  expect((await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n).toBe(0);
});

it('routes without a scope (probes, the document) take any query', async () => {
  for (const path of ['/healthz?x=1', '/openapi.json?v=2']) expect((await get(path)).status).toBe(200);
});
