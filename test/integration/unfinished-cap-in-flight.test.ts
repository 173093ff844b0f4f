/**
 * The unfinished-task cap when a true-up runs while requests are in flight (admitted in Redis, not
 * yet committed in Postgres): a request that commits after the count, or that gives its place back
 * after it (a failure, a replay, a conflict), must leave the cap where Postgres says it is.
 */
import type { Pool, QueryConfig } from 'pg';
import { RequestAdmission } from '../../services/api/limits/request-admission';
import { UnfinishedTrueUp } from '../../services/api/limits/unfinished-true-up';
import { RunningServer, startServer } from '../../services/api/server';
import { createApp } from '../../services/api/app';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { TenantLabels } from '../../services/core/observability/tenant-labels';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
let server: RunningServer;
let url: string;
let trueUp: UnfinishedTrueUp;
/** The next unkeyed insert waits here until opened, then fails if told to. */
let gate: { held: boolean; arrived: () => void; open: (fail: boolean) => void } | null = null;

/** A pool whose next unkeyed insert is held at `gate` (it reaches Postgres after the test opens it). */
function holdingPool(real: Pool): Pool {
  const query = async (config: QueryConfig | string, values?: unknown[]) => {
    const g = gate;
    if (typeof config !== 'string' && config.name === 'create-tasks-unkeyed' && g && !g.held) {
      g.held = true;
      const fail = await new Promise<boolean>((resolve) => {
        g.open = resolve;
        g.arrived();
      });
      if (fail) throw new Error('insert failed (test)');
    }
    return real.query(config as never, values as never);
  };
  return new Proxy(real, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) });
}

beforeAll(async () => {
  stack = await createStack();
  const metrics = apiMetrics(createRegistry('api'));
  const tenantAdmission = new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX, stack.cfg.REDIS_PARTITIONS);
  const env = { TENANT_RATE_LIMIT: 0, TENANT_BURST: 0, TENANT_MAX_UNFINISHED: 0 };
  const admission = new RequestAdmission({ cache: new TenantCache(stack.pool, 0), admission: tenantAdmission, env, log: silentLog, metrics, tenantLabels: new TenantLabels(2) });
  trueUp = new UnfinishedTrueUp({ pool: stack.pool, admission: tenantAdmission, lock: stack.queue, envCap: 0 }, 60_000, silentLog);
  const app = createApp({ pool: holdingPool(stack.pool), queue: stack.queue, log: silentLog, metrics, maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, admission });
  server = await startServer(app, '127.0.0.1:0');
  url = `http://127.0.0.1:${server.address.port}`;
});
afterAll(async () => {
  await server.stop();
  await stack.close();
});

beforeEach(async () => {
  await stack.pool.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE tenant = 'default'");
  await setTenant(stack.pool, 'default', { max_unfinished: 2 });
  await trueUp.runOnce();
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const unfinished = async () => (await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'default' AND status = 'queued'")).rows[0].n as number;

/** Sends a request whose insert is held; runs a true-up meanwhile; then lets the insert go on (or fail). */
async function trueUpWhileInFlight(body: unknown, fail: boolean): Promise<number> {
  const arrived = new Promise<void>((resolve) => (gate = { held: false, arrived: resolve, open: () => undefined }));
  const answer = post(body);
  await arrived;
  await trueUp.runOnce();
  gate!.open(fail);
  gate = null;
  return (await answer).status;
}

it('a task committed after a true-up counted Postgres still holds its place under the cap', async () => {
  expect(await trueUpWhileInFlight({ type: 'noop' }, false)).toBe(201);
  expect((await post({ type: 'noop' })).status).toBe(201);
  // Two unfinished tasks, and the cap is two.
  expect((await post({ type: 'noop' })).status).toBe(429);
  expect(await unfinished()).toBe(2);
  await trueUp.runOnce();
  expect((await post({ type: 'noop' })).status).toBe(429);
});

it('a request that fails after a true-up gives back only the place it took', async () => {
  expect((await post({ type: 'noop' })).status).toBe(201);
  expect(await trueUpWhileInFlight({ type: 'noop' }, true)).toBe(500);
  expect((await post({ type: 'noop' })).status).toBe(201);
  expect((await post({ type: 'noop' })).status).toBe(429);
  expect(await unfinished()).toBe(2);
});
