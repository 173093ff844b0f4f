/**
 * Tenant limits while Redis is connected but does not answer (its writes paused: CLIENT PAUSE, as a
 * failover pauses them, or a stalled master): README promises that while Redis cannot be reached
 * limits are not enforced and tasks are still accepted into Postgres, as for a tenant without
 * limits. A submission of a tenant with limits must not wait for Redis without bound, and the
 * admission that Redis runs late must not keep a place under the cap.
 */
import type Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { RequestAdmission } from '../../services/api/limits/request-admission';
import { RunningServer, startServer } from '../../services/api/server';
import { createApp } from '../../services/api/app';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { TenantLabels } from '../../services/core/observability/tenant-labels';
import { partitionOf, partitionTags } from '../../services/core/queue/partitions';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { clusterMode } from '../support/cluster-mode';
import { withPrivateRedis } from '../support/private-redis';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

let stack: Stack;
let server: RunningServer;
let url: string;
/** A connection of its own that pauses and unpauses the Redis the API uses. */
let pauser: Redis;

// Its Redis is paused: one of its own (private-redis.ts).
withPrivateRedis(() => {
  beforeAll(async () => {
    stack = await createStack();
    pauser = createRedis({ addr: stack.cfg.REDIS_ADDR, name: 'test-pauser', offlineQueue: true });
    const metrics = apiMetrics(createRegistry('api'));
    const tenantAdmission = new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX, stack.cfg.REDIS_PARTITIONS);
    const env = { TENANT_RATE_LIMIT: 0, TENANT_BURST: 0, TENANT_MAX_UNFINISHED: 0 };
    const admission = new RequestAdmission({ cache: new TenantCache(stack.pool, 0), admission: tenantAdmission, env, log: silentLog, metrics, tenantLabels: new TenantLabels(2), waitMs: 300 });
    const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics, maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, admission });
    server = await startServer(app, '127.0.0.1:0');
    url = `http://127.0.0.1:${server.address.port}`;
  });
  afterAll(async () => {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
    await server.stop();
    await stack.close();
  });
});

const post = (body: unknown) => fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
/** A key of the admission counters of tenant `default` (services/core/tenancy/admission.ts). */
const admissionKey = (name: string) => `${partitionTags(stack.cfg.REDIS_KEY_PREFIX, stack.cfg.REDIS_PARTITIONS)[partitionOf('default', stack.cfg.REDIS_PARTITIONS)]}:tenant:${name}`;

// A single Redis only: the pause is of the one server (the cluster's masters are paused in test/cluster).
(clusterMode() ? it.skip : it)(
  'a tenant with limits is admitted without them while Redis does not answer, and the late admission gives its place back',
  async () => {
    await setTenant(stack.pool, 'default', { rate_limit: 1000, burst: 1000, max_unfinished: 100 });
    expect((await post({ type: 'noop' })).status).toBe(201);
    expect(await stack.inspect.zcard(admissionKey('in_flight'))).toBe(0);
    // Writes (and the admission script) wait until UNPAUSE; reads still answer.
    await pauser.client('PAUSE', 600_000, 'WRITE');
    try {
      // Before: the request waited for the paused Redis, however long the pause lasted.
      const answer = await post({ type: 'noop', payload: { during: 'pause' } });
      expect(answer.status).toBe(201);
      const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE payload->>'during' = 'pause'");
      expect(rows[0].n).toBe(1);
    } finally {
      await pauser.client('UNPAUSE');
    }
    // The admission Redis ran late took a place the request never settled: it is given back
    // (before: it stayed in flight, holding its place, for IN_FLIGHT_TTL_MS).
    await waitFor(async () => (await stack.inspect.zcard(admissionKey('in_flight'))) === 0, 10_000, 'the late admission to be settled');
    const admitted = Number(await stack.inspect.hget(admissionKey('admitted'), 'default'));
    // Two requests admitted in Redis (the first and the late one), one place given back.
    expect(admitted).toBe(1);
  },
  20_000,
);
