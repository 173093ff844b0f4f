/**
 * The built api applies what its settings say: HTTP_HEADERS_TIMEOUT_MS and HTTP_MAX_CONNECTIONS
 * reach the server, and /readyz runs on a connection of its own with Redis reported (body and
 * dependency_up on the metrics port) rather than required; at HTTP_MAX_CONNECTIONS the manifests'
 * liveness probe still answers. Run `npm run build` first.
 */
import http from 'node:http';
import net from 'node:net';
import type { Pool } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { silentLog, waitFor } from '../support/stack';
import { createTestDatabase, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { headersIn } from '../support/raw-http';
import { container, environment, find, synth } from '../k8s/helpers';

let db: TestDatabase;
let pool: Pool;
let api: ChildHandle;
let port = 0;
let metricsPort = 0;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPgPool(db.url, 2, 'api-limits-readiness', silentLog);
  port = await freePort();
  metricsPort = await freePort();
  api = await spawnService('dist/services/api/main.js', {
    POSTGRES_URL: db.url,
    // Nothing listens there: Redis is down for the whole test.
    REDIS_ADDR: `127.0.0.1:${await freePort()}`,
    REDIS_KEY_PREFIX: uniqueRedisPrefix('limitsapi'),
    API_ADDR: `127.0.0.1:${port}`,
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
    HTTP_HEADERS_TIMEOUT_MS: '600',
    HTTP_MAX_CONNECTIONS: '4',
    READINESS_TIMEOUT_MS: '500',
    LOG_LEVEL: 'info',
  });
});

afterEach(() => {
  for (const s of sockets) s.destroy();
  sockets.clear();
});

afterAll(async () => {
  await killAllChildren();
  await pool?.end();
  await db?.drop();
});

function connect(): Promise<{ socket: net.Socket; received: () => string; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let data = '';
    const socket = net.connect(port, '127.0.0.1');
    sockets.add(socket);
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.once('connect', () => {
      socket.on('error', () => undefined);
      resolve({ socket, received: () => data, closed });
    });
    socket.once('error', reject);
  });
}

/** A request on a connection of its own, closed after the answer (fetch would keep it open and count). */
function get(path: string, toPort = port): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: toPort, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}


it('/readyz is 200 with Redis down, reports it, and checks Postgres on its own connection', async () => {
  const res = await get('/readyz');
  const body = JSON.parse(res.body) as { status: string; checks: Record<string, string> };
  expect([res.status, body.status, body.checks.postgres]).toEqual([200, 'ready', 'ok']);
  expect(body.checks.redis).not.toBe('ok');

  const metrics = (await get('/metrics', metricsPort)).body;
  expect(metrics).toMatch(/^dependency_up\{dependency="postgres",service="api"\} 1$/m);
  expect(metrics).toMatch(/^dependency_up\{dependency="redis",service="api"\} 0$/m);

  const { rows } = await pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'task-scheduler-api-readiness'");
  expect(rows[0].n).toBe(1);
});

it('cuts off headers that do not finish within HTTP_HEADERS_TIMEOUT_MS', async () => {
  const c = await connect();
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const ms = await c.closed;
  expect(ms).toBeGreaterThanOrEqual(550);
  expect(ms).toBeLessThan(600 + 300 + 1000);
  expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
});

it('serves HTTP_MAX_CONNECTIONS connections at once and closes the next', async () => {
  // Each connection stays open (keep-alive) once it was answered, until one is closed unanswered.
  let served = 0;
  for (;;) {
    const c = await connect();
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const answered = await Promise.race([c.closed.then(() => false), headersIn(c.socket)]);
    if (!answered) break;
    expect(c.received()).toMatch(/^HTTP\/1\.1 200/);
    served++;
  }
  expect(served).toBe(4);
  for (const s of sockets) s.destroy();
  // Once those are gone the api answers again.
  await waitFor(async () => (await get('/healthz').then((r) => r.status, () => 0)) === 200, 5000, 'the api to admit connections again');
});

it("the api Deployment's liveness probe is answered while HTTP_MAX_CONNECTIONS are open (only readiness fails)", async () => {
  const c = container(find(synth(environment('prod')), 'Deployment', 'task-scheduler-api'), 'api');
  // The probe's port in this process: the container port of that number is named http or metrics.
  const probePort = (probe: { httpGet: { path: string; port: number } }) => {
    const name = (c.ports as { name: string; containerPort: number }[]).find((p) => p.containerPort === probe.httpGet.port)?.name;
    return { path: probe.httpGet.path, port: ({ http: port, metrics: metricsPort } as Record<string, number>)[name ?? '']! };
  };
  const liveness = probePort(c.livenessProbe);
  const readiness = probePort(c.readinessProbe);
  // Fill the api port as the test above does.
  for (;;) {
    const k = await connect();
    k.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    if (!(await Promise.race([k.closed.then(() => false), headersIn(k.socket)]))) break;
  }
  // The kubelet opens a connection per probe.
  expect(await get(liveness.path, liveness.port).then((r) => r.status, (e: NodeJS.ErrnoException) => e.code)).toBe(200);
  expect(await get(readiness.path, readiness.port).then((r) => r.status, (e: NodeJS.ErrnoException) => e.code)).not.toBe(200);
});

it('stops on SIGTERM with exit code 0 and leaves no Postgres connection behind', async () => {
  expect(await api.stop('SIGTERM', 15_000)).toBe(0);
  const gone = async () => (await pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'task-scheduler-api%'")).rows[0].n === 0;
  await waitFor(gone, 5000, 'the api connections to close');
});
