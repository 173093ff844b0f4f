/**
 * Wrong methods on known paths get 405 with Allow; a body cut short by the client's close creates
 * nothing; slow clients are cut off by the header and request timeouts, and 2,000 of them do not
 * keep /healthz or a POST /tasks from answering.
 */
import net from 'node:net';
import { createApp } from '../../services/api/app';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';

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

function openSocket(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(server.address.port, '127.0.0.1', () => resolve(s));
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
async function halfClosed(raw: string): Promise<string> {
  const s = await openSocket();
  let data = '';
  s.on('data', (d: Buffer) => (data += d.toString('utf8')));
  const done = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.end(raw);
  await done;
  return data;
}

describe('a client that closes its sending side during the request', () => {
  const post = (body: string, length: number) => `POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n${body}`;

  it('creates nothing from a body cut short by the close', async () => {
    const body = JSON.stringify({ type: 'noop', payload: { marker: 'cut-short' } });
    const answer = await halfClosed(post(body, Buffer.byteLength(body) + 10));
    expect(answer).not.toMatch(/^HTTP\/1\.1 2/);
    expect((await stack.pool.query("SELECT id FROM tasks WHERE payload->>'marker' = 'cut-short'")).rows).toEqual([]);
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
