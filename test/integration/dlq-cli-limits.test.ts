/**
 * `dlq redrive` for a tenant with a rate limit, against an API on real Postgres and Redis: a bulk
 * retry is admitted under the tenant's limits, refused whole when it is larger than the burst.
 */
import { Authenticator } from '../../services/api/auth/authenticator';
import { createApp } from '../../services/api/app';
import { RequestAdmission } from '../../services/api/limits/request-admission';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { TenantLabels } from '../../services/core/observability/tenant-labels';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { createKey } from '../../services/core/tenancy/key-store';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createStack, silentLog, Stack } from '../support/stack';
import { runCliCaptured } from '../support/cli-run';

let stack: Stack;
let server: RunningServer;
let url: string;
let auth: Authenticator;

beforeAll(async () => {
  stack = await createStack();
  const metrics = apiMetrics(createRegistry('api'));
  const env = { TENANT_RATE_LIMIT: 0, TENANT_BURST: 0, TENANT_MAX_UNFINISHED: 0 };
  const admission = new RequestAdmission({ cache: new TenantCache(stack.pool, 0), admission: new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX), env, log: silentLog, metrics, tenantLabels: new TenantLabels(2) });
  auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: 500, log: silentLog });
  server = await startServer(createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics, maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, auth, admission }), '127.0.0.1:0');
  url = `http://127.0.0.1:${server.address.port}`;
});
afterAll(async () => {
  await server.stop();
  await auth.close();
  await stack.close();
});

const cli = (...argv: string[]) => runCliCaptured(argv, {});

it('redrives every dead task of a tenant whose burst is below a redrive step, in steps within the burst', async () => {
  const { key } = await createKey(stack.pool, { tenant: 'small-burst', scopes: ['tasks:write', 'tasks:read'], expiresInMs: null });
  const api = ['--api', url, '--key', key];
  for (let i = 0; i < 7; i++) {
    const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop' }) });
    expect(res.status).toBe(201);
  }
  // Seven dead tasks (cancelled, then recorded dead), then a burst of 3 at a rate that refills at once.
  await fetch(`${url}/tasks/cancel`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ filter: { status: 'queued' } }) });
  await stack.pool.query("UPDATE tasks SET status = 'dead' WHERE tenant = 'small-burst'");
  await setTenant(stack.pool, 'small-burst', { rate_limit: 1000, burst: 3 });

  const r = await cli('dlq', 'redrive', '--json', ...api);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out)).toMatchObject({ matched: 7, changed: 7 });
  const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'small-burst' AND status = 'queued'");
  expect(rows[0].n).toBe(7);
});
