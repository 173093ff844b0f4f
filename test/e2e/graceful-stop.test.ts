/**
 * The built api stopped with SIGTERM while work is in flight: a request accepted before the signal
 * is answered, its task kept, and the process exits once it is, not at SHUTDOWN_GRACE_MS.
 */
import http from 'node:http';
import { Client } from 'pg';
import { AUTH_HEADER } from '../support/auth';
import { ServiceProcesses, startServiceProcesses } from '../support/service-processes';
import { waitFor } from '../support/stack';

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
