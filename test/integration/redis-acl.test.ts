/**
 * The least-privilege Redis ACL (services/core/db/redis-acl.ts) is enough: the built api and
 * workers authenticate as an ACL user made from it (REDIS_USERNAME, REDIS_PASS) and run real
 * traffic — enqueue, lease, finish, retry, dead letter, a reaped lease after a worker is killed, a
 * task the reconciler re-queues, queue gauges and readiness — and Redis's ACL LOG shows nothing
 * refused but the one optional CONFIG GET of the eviction-policy check. Whatever the ACL leaves
 * out is refused: other keys, CONFIG, KEYS, FLUSHALL, and scripts reaching outside the namespace.
 * Run `npm run build` first.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { Pool } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { createRedis } from '../../services/core/db/redis';
import { aclKeyPattern, aclRules } from '../../services/core/db/redis-acl';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { silentLog, waitFor } from '../support/stack';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

const prefix = uniqueRedisPrefix('acl');
const user = `ts-test-${prefix}`;
const password = randomBytes(24).toString('hex');
const weights = { critical: 8, high: 4, default: 2, low: 1 };

let db: TestDatabase;
let pool: Pool;
let admin: Redis;
let limited: Redis;
let env: Record<string, string>;
let apiPort = 0;
let metricsPort = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPgPool(db.url, 2, 'redis-acl-test', silentLog);
  admin = createRedis({ addr: testRedisAddr(), name: 'acl-admin', offlineQueue: true });
  await admin.call('ACL', 'SETUSER', user, ...aclRules(prefix, `#${createHash('sha256').update(password).digest('hex')}`));
  limited = createRedis({ addr: testRedisAddr(), username: user, password, name: 'acl-limited', offlineQueue: true });
  env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_USERNAME: user,
    REDIS_PASS: password,
    REDIS_KEY_PREFIX: prefix,
    VIS_TIMEOUT_MS: '1000',
    REAPER_SCAN_INTERVAL_MS: '100',
    RETRY_BASE_MS: '10',
    RETRY_MAX_MS: '50',
    RETRY_JITTER_MS: '0',
    RECONCILE_INTERVAL_MS: '200',
    RECONCILE_GRACE_MS: '0',
    // Limits on, so tenant admission (its scripts and the true-up's reads) runs too.
    TENANT_RATE_LIMIT: '100000',
    TENANT_MAX_UNFINISHED: '1000000',
    LOG_LEVEL: 'info',
  };
  apiPort = await freePort();
  metricsPort = await freePort();
  await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${metricsPort}` });
});

afterAll(async () => {
  await killAllChildren();
  limited?.disconnect();
  if (admin) {
    const keys = await admin.keys(`{${prefix}}:*`);
    if (keys.length) await admin.del(...keys);
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
  }
  await pool?.end();
  await db?.drop();
});

const startWorker = async (): Promise<ChildHandle> => spawnService('dist/services/worker/main.js', { ...env, METRICS_ADDR: `127.0.0.1:${await freePort()}` });

async function submit(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH_HEADER }, body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const statusOf = async (id: string) => (await pool.query<{ status: string }>('SELECT status FROM tasks WHERE id = $1', [id])).rows[0]?.status;
const until = (id: string, status: string) => waitFor(async () => (await statusOf(id)) === status, 20_000, `task ${id} to be ${status}`);

/** What the ACL LOG holds for the test's user: the refused command or key, and why. */
async function refusals(): Promise<{ reason: string; object: string }[]> {
  const entries = (await admin.call('ACL', 'LOG', '1000')) as unknown[][];
  return entries
    .map((e) => Object.fromEntries(Array.from({ length: e.length / 2 }, (_, i) => [e[2 * i], e[2 * i + 1]])) as Record<string, string>)
    .filter((e) => e.username === user)
    .map((e) => ({ reason: e.reason!, object: e.object! }));
}

it('the api and workers run every kind of queue traffic as the ACL user, refused nothing but CONFIG GET', async () => {
  let worker = await startWorker();
  const done = await Promise.all(Array.from({ length: 20 }, () => submit({ type: 'noop', priority: 'high' })));
  const retried = await submit({ type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 2 });
  const dead = await submit({ type: 'always_fail', max_retries: 0, priority: 'low' });
  for (const id of done) await until(id, 'succeeded');
  await until(retried, 'succeeded');
  await until(dead, 'dead');

  // A lease the reaper takes back: the worker running it is killed, another one reaps it.
  const lost = await submit({ type: 'sleeper', payload: { sleep_ms: 60_000 }, max_retries: 0 });
  await until(lost, 'running');
  worker.kill();
  await worker.exited;
  worker = await startWorker();
  await until(lost, 'dead');
  expect((await pool.query('SELECT outcome FROM task_runs WHERE task_id = $1', [lost])).rows).toEqual([{ outcome: 'expired' }]);

  // A task Redis never heard of: the reconciler queues it, and it runs.
  const missing = randomUUID();
  await pool.query(`INSERT INTO tasks (id, type, priority, payload, max_retries, updated_at) VALUES ($1, 'noop', 'default', '{}', 1, now() - interval '1 minute')`, [missing]);
  await until(missing, 'succeeded');

  // Readiness, the queue gauges and the reads the API and tools make.
  const ready = await fetch(`http://127.0.0.1:${apiPort}/readyz`);
  expect(((await ready.json()) as { checks: Record<string, string> }).checks).toEqual({ postgres: 'ok', redis: 'ok' });
  expect(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).toMatch(/queue_depth\{[^}]*priority="high"[^}]*\} 0/);
  const queue = new RedisQueue(limited, { prefix, strategy: 'weighted', weights });
  expect(await queue.deadLetterIds('low')).toContain(dead);
  expect(await queue.deadLetterIds('default')).toContain(lost);
  await expect(queue.indexed([dead, missing].map((id) => ({ id, tenant: 'default' })))).resolves.toHaveLength(2);

  await worker.stop();
  // The log does see this user: the eviction-policy check asked once per process and was refused.
  const refused = await refusals();
  expect(refused.map((r) => r.object)).toContain('config|get');
  expect(refused.filter((r) => r.object !== 'config|get')).toEqual([]);
});

it('refuses what the services do not need: other keys, CONFIG, KEYS, FLUSHALL, scripts reaching outside the namespace', async () => {
  const noperm = /^NOPERM/;
  await expect(limited.set('not-ours', 'x')).rejects.toThrow(noperm);
  await expect(limited.get(`{${prefix}x}:q:high`)).rejects.toThrow(noperm);
  await expect(limited.call('CONFIG', 'GET', 'requirepass')).rejects.toThrow(noperm);
  await expect(limited.call('KEYS', '*')).rejects.toThrow(noperm);
  await expect(limited.call('FLUSHALL')).rejects.toThrow(noperm);
  await expect(limited.call('ACL', 'LIST')).rejects.toThrow(noperm);
  await expect(limited.call('SUBSCRIBE', 'anything')).rejects.toThrow(noperm);
  // Scripts are checked call by call: an allowed command on a key outside the namespace is refused.
  await expect(limited.eval("return redis.call('GET', KEYS[1])", 1, 'not-ours')).rejects.toThrow(/NOPERM|No permissions/);
  await expect(limited.eval("return redis.call('FLUSHALL')", 0)).rejects.toThrow(/can't run this command/);
  // Inside the namespace it works, which is the point.
  expect(await limited.eval("return redis.call('SET', KEYS[1], 'ok')", 1, `{${prefix}}:probe`)).toBe('OK');
  expect(aclKeyPattern(prefix)).toBe(`{${prefix}}:*`);
});

it('an ACL made before purge.lua needed LSET still lets retention forget deleted dead tasks (an LREM each)', async () => {
  const older = `${user}-nolset`;
  const pw = randomBytes(24).toString('hex');
  const olderPrefix = `${prefix}-nolset`;
  await admin.call('ACL', 'SETUSER', older, ...aclRules(olderPrefix, `>${pw}`), '-lset');
  const conn = createRedis({ addr: testRedisAddr(), username: older, password: pw, name: 'acl-nolset', offlineQueue: true });
  try {
    const q = new RedisQueue(conn, { prefix: olderPrefix, strategy: 'weighted', weights });
    const list = q.keys.deadLetters[2]!;
    const gone = Array.from({ length: 5 }, () => randomUUID());
    await admin.rpush(list, 'kept-0', ...gone.slice(0, 2), 'kept-1', ...gone.slice(2));
    for (const id of [...gone, 'kept-0', 'kept-1']) await admin.hset(q.keys.meta, id, '2:1:default');
    expect(await q.purge(gone.map((id) => ({ id, tenant: 'default' })))).toBe(5);
    expect(await admin.lrange(list, 0, -1)).toEqual(['kept-0', 'kept-1']);
    expect(await admin.hmget(q.keys.meta, gone[0]!, gone[4]!, 'kept-0')).toEqual([null, null, '2:1:default']);
  } finally {
    conn.disconnect();
    const keys = await admin.keys(`{${olderPrefix}}:*`);
    if (keys.length) await admin.del(...keys);
    await admin.call('ACL', 'DELUSER', older);
  }
});
