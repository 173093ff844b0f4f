/**
 * Wrong methods on known paths get 405 with Allow; a client that closes its sending side after a
 * request still gets the answer, and a body cut short by that close creates nothing; slow clients
 * are cut off by the header and request timeouts, and 2,000 of them do not keep /healthz or a POST
 * /tasks from answering.
 */
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { createApp } from '../../services/api/app';
import { Authenticator } from '../../services/api/auth/authenticator';
import { createKey } from '../../services/core/tenancy/key-store';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';
import { expectContract } from '../support/contract';

let stack: Stack;
let server: RunningServer;
let url: string;
beforeAll(async () => {
  stack = await createStack();
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: stack.cfg.MAX_BODY_BYTES, defaultMaxRetries: 5, idempotencyTtlMs: 60_000 });
  server = await startServer(app, '127.0.0.1:0', { headersTimeoutMs: 500, requestTimeoutMs: 1000, keepAliveTimeoutMs: 5000, maxConnections: 5000 });
  url = `http://127.0.0.1:${server.address.port}`;
});
afterAll(async () => {
  await server.stop();
  await stack.close();
});

describe('405 with Allow', () => {
  it.each([
    ['/tasks', ['PUT', 'DELETE', 'PATCH', 'OPTIONS'], 'GET, HEAD, POST'],
    ['/tasks/', ['PUT', 'DELETE'], 'GET, HEAD, POST'],
    ['/tasks/batch', ['PUT', 'DELETE', 'PATCH', 'OPTIONS'], 'POST'],
    ['/tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'], 'GET, HEAD'],
    ['/healthz', ['POST', 'DELETE', 'OPTIONS'], 'GET, HEAD'],
    ['/readyz', ['POST', 'PUT'], 'GET, HEAD'],
  ])('%s', async (path, methods, allow) => {
    for (const method of methods) {
      const res = await fetch(`${url}${path}`, { method, ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } }) });
      expect([method, res.status]).toEqual([method, 405]);
      expect(res.headers.get('allow')).toBe(allow);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });

  it('HEAD works where GET does, and unknown paths stay 404', async () => {
    expect((await fetch(`${url}/healthz`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/nope`, { method: 'PUT' })).status).toBe(404);
  });
});

function openSocket(port = server.address.port): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

const closed = (s: net.Socket) => new Promise<number>((resolve) => {
  const t0 = Date.now();
  const done = () => resolve(Date.now() - t0);
  // The server answers 408 and ends the connection.
  s.on('data', (d: Buffer) => d.toString().startsWith('HTTP/1.1 408') && done());
  s.on('end', done);
  s.on('close', done);
  s.on('error', () => undefined);
});

/** Sends `raw`, closes the sending side, and reads until the server closes. */
async function halfClosed(raw: Buffer, port?: number): Promise<string> {
  const s = await openSocket(port);
  let data = '';
  s.on('data', (d: Buffer) => (data += d.toString('utf8')));
  const done = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.end(raw);
  await done;
  return data;
}

describe('a client that closes its sending side once its request is out', () => {
  // API keys looked up in Postgres on every request: the close arrives while the request waits for
  // its key, before its body is read (express's body parser then took the body for missing).
  let keyed: RunningServer;
  let auth: Authenticator;
  let bearer: string;
  beforeAll(async () => {
    auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog });
    const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: stack.cfg.MAX_BODY_BYTES, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, auth });
    keyed = await startServer(app, '127.0.0.1:0');
    bearer = `Authorization: Bearer ${(await createKey(stack.pool, { tenant: 'default', scopes: ['tasks:read', 'tasks:write'], expiresInMs: null })).key}\r\n`;
  });
  afterAll(async () => {
    await keyed.stop();
    await auth.close();
  });
  const post = (path: string, body: Buffer, headers = '', length = body.length) =>
    Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}Content-Length: ${length}\r\n\r\n`, 'latin1'), body]);
  const rows = async (marker: string) => (await stack.pool.query<{ id: string }>("SELECT id::text FROM tasks WHERE payload->>'marker' = $1 ORDER BY id", [marker])).rows.map((r) => r.id);
  const task = (marker: string) => ({ type: 'noop', payload: { marker } });

  it('still gets the answer to POST /tasks: the task it made is not one it never heard of', async () => {
    const answer = await halfClosed(post('/tasks', Buffer.from(JSON.stringify(task('half-closed'))), bearer), keyed.address.port);
    expect(answer).toMatch(/^HTTP\/1\.1 201 /);
    expect(await rows('half-closed')).toEqual([/"id":"([0-9a-f-]{36})"/.exec(answer)![1]]);
  });

  it('gets the answer on the routes whose body express reads (a batch, a compressed body), not one for an empty body', async () => {
    const batch = await halfClosed(post('/tasks/batch', Buffer.from(JSON.stringify({ tasks: [task('half-batch'), task('half-batch')] })), bearer), keyed.address.port);
    expect(batch).toMatch(/^HTTP\/1\.1 200 /);
    expect(await rows('half-batch')).toHaveLength(2);
    const gz = await halfClosed(post('/tasks', gzipSync(JSON.stringify(task('half-gzip'))), `${bearer}Content-Encoding: gzip\r\n`), keyed.address.port);
    expect(gz).toMatch(/^HTTP\/1\.1 201 /);
    expect(await rows('half-gzip')).toHaveLength(1);
  });

  it('creates nothing from a body cut short by the close', async () => {
    const body = Buffer.from(JSON.stringify(task('cut-short')));
    for (const path of ['/tasks', '/tasks/batch']) {
      const answer = await halfClosed(post(path, body, '', body.length + 10));
      expect(answer).not.toMatch(/^HTTP\/1\.1 2/);
    }
    const gz = gzipSync(body);
    const answer = await halfClosed(post('/tasks', gz, `${bearer}Content-Encoding: gzip\r\n`, gz.length + 10), keyed.address.port);
    expect(answer).not.toMatch(/^HTTP\/1\.1 2/);
    expect(await rows('cut-short')).toEqual([]);
  });
});

describe('slow clients', () => {
  it('a client whose headers never finish is cut off after the headers timeout', async () => {
    const s = await openSocket();
    s.write('POST /tasks HTTP/1.1\r\nHost: x\r\n');
    const ms = await closed(s);
    s.destroy();
    expect(ms).toBeLessThan(5000);
  }, 10_000);

  it('a body that trickles is cut off after the request timeout', async () => {
    const s = await openSocket();
    s.write('POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
    const timer = setInterval(() => s.writable && s.write(' '), 200);
    const ms = await closed(s);
    clearInterval(timer);
    expect(ms).toBeLessThan(5000);
  });

  it('under 2,000 slow sockets, /healthz and a POST /tasks still answer within a second', async () => {
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 2000; i++) {
        const s = await openSocket();
        s.on('error', () => undefined);
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
        sockets.push(s);
      }
      const t0 = Date.now();
      const health = await fetch(`${url}/healthz`);
      const posted = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
      const elapsed = Date.now() - t0;
      expect([health.status, posted.status]).toEqual([200, 201]);
      expect(elapsed).toBeLessThan(1000);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe('the answers the HTTP server gives itself are in the OpenAPI document', () => {
  /** Writes `raw` (closing the sending side when `end`) and reads the answer until the server closes. */
  async function answerTo(raw: string, end: boolean): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const s = await openSocket();
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString('utf8')));
    const done = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.on('error', () => undefined);
    if (end) s.end(raw);
    else s.write(raw);
    await done;
    const [head, body] = [data.slice(0, data.indexOf('\r\n\r\n')), data.slice(data.indexOf('\r\n\r\n') + 4)];
    const [line, ...lines] = head.split('\r\n');
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    return { status: Number(line!.split(' ')[1]), headers, body };
  }

  it.each([
    ['417: an Expect other than 100-continue', 'POST', '/tasks', 'POST /tasks HTTP/1.1\r\nHost: x\r\nExpect: 100-wait\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', true, 417],
    ['431: headers over 16 KiB', 'GET', '/tasks', `GET /tasks HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20000)}\r\n\r\n`, true, 431],
    ['408: headers that never finish', 'GET', '/queues', 'GET /queues HTTP/1.1\r\nHost: x\r\n', false, 408],
  ])('%s', async (_what, method, path, raw, end, status) => {
    const answer = await answerTo(raw, end);
    expect(answer.status).toBe(status);
    expect(() => expectContract(method, path, answer)).not.toThrow();
  });
});
