/**
 * The built api stopped with SIGTERM while work is in flight: a request accepted before the signal
 * is answered, its task kept, and the process exits once it is, not at SHUTDOWN_GRACE_MS.
 */
import http from 'node:http';
import { Client } from 'pg';
import { AUTH_HEADER } from '../support/auth';
import { ServiceProcesses, startServiceProcesses } from '../support/service-processes';
import { waitFor } from '../support/stack';
import { ChildHandle, spawnService } from '../support/processes';
import { startStallProxy } from '../support/stall-proxy';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import { WORKER_SCRIPT } from '../../services/worker/node-flags';

let svc: ServiceProcesses | null = null;
afterEach(async () => {
  await svc?.stop();
  svc = null;
});

function post(url: string, agent: http.Agent): Promise<{ status: number; connection: string | undefined; id: string }> {
  const body = JSON.stringify({ type: 'noop' });
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/tasks`, { method: 'POST', agent, headers: { ...AUTH_HEADER, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, id: (JSON.parse(text) as { id: string }).id }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

it('an api stopped while a keep-alive request is in flight answers it with Connection: close and exits without waiting out the keep-alive timeout', async () => {
  const s = (svc = await startServiceProcesses({ label: 'stop-api', worker: false, env: { SHUTDOWN_GRACE_MS: '15000' } }));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // The connection has served a request already: a client's ordinary keep-alive connection.
  expect((await post(s.url, agent)).status).toBe(201);
  // Inserts wait on a lock held here, so the next request is in flight when the signal arrives.
  const locker = new Client({ connectionString: s.db.url });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE');
    const answer = post(s.url, agent);
    await waitFor(async () => {
      const { rows } = await locker.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
      return rows.length > 0;
    }, 10_000, 'the insert to wait on the lock');
    const t0 = Date.now();
    const stopped = s.api.stop('SIGTERM', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    await locker.query('ROLLBACK');
    const res = await answer;
    expect(res.status).toBe(201);
    // The client is told not to send another request on a connection that is going away.
    expect(res.connection).toBe('close');
    expect(await stopped).toBe(0);
    // Not SHUTDOWN_GRACE_MS (15 s), nor the keep-alive timeout (65 s).
    expect(Date.now() - t0).toBeLessThan(5000);
    const { rows } = await s.pool.query('SELECT status FROM tasks WHERE id = $1', [res.id]);
    expect(rows).toEqual([{ status: 'queued' }]);
  } finally {
    await locker.end().catch(() => undefined);
    agent.destroy();
  }
});

it('an api whose stop outlasts SHUTDOWN_GRACE_MS says so and exits 1, not silently 0', async () => {
  const s = (svc = await startServiceProcesses({ label: 'stop-api-grace', worker: false, env: { SHUTDOWN_GRACE_MS: '1000' } }));
  const locker = new Client({ connectionString: s.db.url });
  await locker.connect();
  const agent = new http.Agent({ keepAlive: false });
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE');
    const answer = post(s.url, agent).catch((err: Error) => err);
    await waitFor(async () => {
      const { rows } = await locker.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
      return rows.length > 0;
    }, 10_000, 'the insert to wait on the lock');
    // The request stays stuck past the grace: the stop is cut short.
    expect(await s.api.stop('SIGTERM', 30_000)).toBe(1);
    expect(s.api.output()).toContain('stopping took longer than SHUTDOWN_GRACE_MS');
    await locker.query('ROLLBACK');
    await answer;
  } finally {
    await locker.end().catch(() => undefined);
    agent.destroy();
  }
});

async function submit(url: string, body: unknown): Promise<string> {
  const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

// A partition: the worker's calls to one store neither answer nor fail. It exits anyway by
// SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS (inside the manifests' terminationGracePeriodSeconds),
// and the attempt it could not hand back is recovered by another worker: the task still succeeds.
describe.each([
  ['Redis', 'REDIS_ADDR'],
  ['Postgres', 'POSTGRES_URL'],
])('a worker whose %s stops answering during SIGTERM', (store, setting) => {
  it('exits 1 within its grace plus the stop margin, saying so, and the task it held still runs to success', async () => {
    const prefix = uniqueRedisPrefix('stop-stall');
    const shared = { REDIS_KEY_PREFIX: prefix, VIS_TIMEOUT_MS: '3000', REAPER_SCAN_INTERVAL_MS: '200', RECONCILE_INTERVAL_MS: '500', RECONCILE_GRACE_MS: '2000', WORKER_STOP_MARGIN_MS: '2000' };
    const s = (svc = await startServiceProcesses({ label: 'stop-stall', worker: false, env: shared }));
    const pgUrl = new URL(s.db.url);
    const proxy = await startStallProxy(setting === 'REDIS_ADDR' ? testRedisAddr() : `${pgUrl.hostname}:${pgUrl.port}`);
    let second: ChildHandle | null = null;
    try {
      const viaProxy = setting === 'REDIS_ADDR' ? { REDIS_ADDR: proxy.addr } : { POSTGRES_URL: Object.assign(new URL(s.db.url), { host: proxy.addr }).toString() };
      const env = { POSTGRES_URL: s.db.url, REDIS_ADDR: testRedisAddr(), LOG_LEVEL: 'info', METRICS_ADDR: '127.0.0.1:0', WORKER_POOL: '4', ...shared };
      const first = await spawnService(WORKER_SCRIPT, { ...env, ...viaProxy, SHUTDOWN_GRACE_MS: '1000' });
      const id = await submit(s.url, { type: 'sleeper', payload: { sleep_ms: 4000 } });
      await waitFor(async () => (await s.pool.query('SELECT status FROM tasks WHERE id = $1', [id])).rows[0]?.status === 'running', 10_000, `the ${store} task to run`);
      proxy.stall();
      const t0 = Date.now();
      const code = await first.stop('SIGTERM', 30_000);
      const took = Date.now() - t0;
      expect(code).toBe(1);
      expect(first.output()).toContain('stopping took longer than');
      // SHUTDOWN_GRACE_MS (1 s) + WORKER_STOP_MARGIN_MS (2 s), not the stalled calls' own timeouts.
      expect(took).toBeGreaterThanOrEqual(2_900);
      expect(took).toBeLessThan(4_500);
      second = await spawnService(WORKER_SCRIPT, { ...env, SHUTDOWN_GRACE_MS: '1000' });
      await waitFor(async () => (await s.pool.query('SELECT status FROM tasks WHERE id = $1', [id])).rows[0]?.status === 'succeeded', 30_000, 'the task to succeed on the second worker');
    } finally {
      await second?.stop('SIGTERM', 10_000);
      proxy.resume();
      await proxy.close();
    }
  }, 90_000);
});

it('a worker with nothing running stops within seconds, exit 0, while Redis is down (its goodbyes to Redis are not waited out)', async () => {
  const prefix = uniqueRedisPrefix('stop-down');
  const s = (svc = await startServiceProcesses({ label: 'stop-down', worker: false, env: { REDIS_KEY_PREFIX: prefix } }));
  const proxy = await startStallProxy(testRedisAddr());
  const w = await spawnService(WORKER_SCRIPT, { POSTGRES_URL: s.db.url, REDIS_ADDR: proxy.addr, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', METRICS_ADDR: '127.0.0.1:0', SHUTDOWN_GRACE_MS: '0' });
  // Redis goes away: connections are refused from now on.
  await proxy.close();
  await new Promise((r) => setTimeout(r, 2000));
  const t0 = Date.now();
  expect(await w.stop('SIGTERM', 30_000)).toBe(0);
  // Its unlocks, its last announcement and its quit are bounded (a second each), not each waiting
  // out the client's reconnect attempts one after the other (12 s with a grace of 0).
  expect(Date.now() - t0).toBeLessThan(6000);
}, 60_000);
