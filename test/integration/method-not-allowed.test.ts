/**
 * Every known path asked with a method it does not take answers 405 with `Allow` and a problem
 * body (OPTIONS included); the methods it takes still work, HEAD wherever GET does; unknown paths
 * stay 404. node:http rather than fetch, which refuses some methods (TRACE).
 */
import http from 'node:http';
import { createApp } from '../../services/api/app';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
let server: RunningServer;
beforeAll(async () => {
  stack = await createStack();
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000 });
  server = await startServer(app, '127.0.0.1:0');
});
afterAll(async () => {
  await server.stop();
  await stack.close();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const req = http.request({ host: '127.0.0.1', port: server.address.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const UUID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'];
// Each known path in the forms express routes it: with a trailing slash and in another case too.
const KNOWN: [string, string[]][] = [
  ['/tasks', ['GET', 'HEAD', 'POST']],
  ['/tasks/', ['GET', 'HEAD', 'POST']],
  ['/tasks/cancel', ['POST']],
  ['/tasks/retry/', ['POST']],
  [`/tasks/${UUID}/cancel`, ['POST']],
  [`/tasks/${UUID}/retry`, ['POST']],
  ['/tasks/batch', ['POST']],
  ['/tasks/batch/', ['POST']],
  ['/Tasks/Batch', ['POST']],
  [`/tasks/${UUID}`, ['GET', 'HEAD']],
  [`/tasks/${UUID}/`, ['GET', 'HEAD']],
  ['/tasks/not-a-uuid', ['GET', 'HEAD']],
  ['/queues', ['GET', 'HEAD']],
  ['/healthz', ['GET', 'HEAD']],
  ['/healthz/', ['GET', 'HEAD']],
  ['/readyz', ['GET', 'HEAD']],
  ['/readyz/', ['GET', 'HEAD']],
  ['/workflows', ['GET', 'HEAD', 'POST']],
  ['/Workflows/', ['GET', 'HEAD', 'POST']],
  [`/workflows/${UUID}`, ['GET', 'HEAD']],
  [`/workflows/${UUID}/cancel`, ['POST']],
  [`/workflows/${UUID}/cancel/`, ['POST']],
];
const cases = KNOWN.flatMap(([path, allowed]) => METHODS.filter((m) => !allowed.includes(m)).map((method) => [method, path, allowed.join(', ')] as const));

describe('405 with Allow', () => {
  it.each(cases)('%s %s → Allow: %s', async (method, path, allow) => {
    // A plausible body, so nothing but the method is wrong.
    const res = await request(method, path, method === 'GET' || method === 'HEAD' ? undefined : '{"type":"noop"}');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    if (method === 'HEAD') {
      expect(res.body).toBe('');
    } else {
      expect(JSON.parse(res.body)).toMatchObject({ status: 405, title: 'Method not allowed', detail: expect.stringContaining(method) });
    }
  });

  it('creates no task whatever the wrong method carried', async () => {
    for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) await request(method, '/tasks', '{"type":"wrong-method-marker"}');
    const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE type = 'wrong-method-marker'");
    expect(rows[0].n).toBe(0);
  });
});

describe('the allowed methods still work', () => {
  it('POST /tasks and /tasks/batch, with and without a trailing slash', async () => {
    for (const path of ['/tasks', '/tasks/']) expect((await request('POST', path, '{"type":"noop"}')).status).toBe(201);
    for (const path of ['/tasks/batch', '/tasks/batch/']) expect((await request('POST', path, '{"tasks":[{"type":"noop"}]}')).status).toBe(200);
  });

  it('GET and HEAD on /tasks/:id, /healthz and /readyz', async () => {
    const created = JSON.parse((await request('POST', '/tasks', '{"type":"noop"}')).body) as { id: string };
    for (const path of [`/tasks/${created.id}`, `/tasks/${created.id}/`, '/healthz', '/healthz/', '/readyz', '/readyz/']) {
      const get = await request('GET', path);
      const head = await request('HEAD', path);
      expect([path, get.status, head.status, head.body]).toEqual([path, 200, 200, '']);
      expect(head.headers['content-type']).toBe(get.headers['content-type']);
    }
    // An unknown id is 404 and a malformed one 400 on either method, not 405.
    expect([(await request('GET', `/tasks/${UUID}`)).status, (await request('HEAD', `/tasks/${UUID}`)).status]).toEqual([404, 404]);
    expect([(await request('GET', '/tasks/nope')).status, (await request('HEAD', '/tasks/nope')).status]).toEqual([400, 400]);
  });
});

describe('unknown paths stay 404', () => {
  it.each([
    ['PUT', '/nope'],
    ['OPTIONS', '/nope'],
    ['GET', '/'],
    ['DELETE', `/tasks/${UUID}/runs`],
    ['GET', '/tasks/batch/extra'],
    ['POST', '/healthzz'],
    ['OPTIONS', '/tasks//'],
  ])('%s %s', async (method, path) => {
    const res = await request(method, path);
    expect(res.status).toBe(404);
    expect(res.headers.allow).toBeUndefined();
  });
});
