/**
 * Slow and greedy clients (issue 15): headers or a body that trickle in are cut off after
 * HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS, 2,000 such sockets do not keep /healthz or a
 * POST /tasks from answering, and HTTP_MAX_CONNECTIONS caps the open connections. Raw sockets, so
 * the test controls every byte and when it is sent.
 */
import net from 'node:net';
import { createApp } from '../../services/api/app';
import { RunningServer, ServerLimits, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';
import { headersIn } from '../support/raw-http';

let stack: Stack;
const servers: RunningServer[] = [];
const sockets = new Set<net.Socket>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  stack = await createStack();
});
afterEach(async () => {
  for (const t of timers) clearInterval(t);
  timers.clear();
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await stack.close();
});

async function startApi(limits: ServerLimits): Promise<number> {
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0', limits);
  servers.push(server);
  return server.address.port;
}

interface Conn {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves when the server closes the connection (or it fails), with the time since connecting. */
  closed: Promise<number>;
}

function connect(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let data = '';
    const socket = net.connect(port, '127.0.0.1');
    sockets.add(socket);
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      // A server closing on us may reset the connection; `closed` reports it either way.
      socket.on('error', () => undefined);
      resolve({ socket, received: () => data, closed });
    });
    socket.once('error', reject);
  });
}

/** Writes `text` one byte every `everyMs` on `socket`, repeating the last line forever (it never ends). */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    socket.write(text[i % text.length]!);
    i++;
  }, everyMs);
  timers.add(timer);
}

/** One complete HTTP/1.1 response on a keep-alive connection: its status code. */
async function roundTrip(c: Conn, path = '/healthz'): Promise<number> {
  const before = c.received().length;
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const complete = () => {
    const text = c.received().slice(before);
    const head = text.indexOf('\r\n\r\n');
    if (head < 0) return null;
    const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
    return text.length >= head + 4 + length ? Number(text.slice(9, 12)) : null;
  };
  return waitFor(async () => complete(), 5000, `a response to GET ${path}`);
}


const statusOf = (text: string) => (text.startsWith('HTTP/1.1 ') ? Number(text.slice(9, 12)) : null);

describe('timeouts', () => {
  const limits: ServerLimits = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 5000, maxConnections: 1000 };
  // Node checks the timeouts every min(1 s, headers timeout / 2); the rest is a loaded machine.
  const LATE_MS = 500 + 1000;

  it('headers sent byte by byte are cut off after the headers timeout (408)', async () => {
    const port = await startApi(limits);
    const c = await connect(port);
    trickle(c.socket, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 50);
    const ms = await c.closed;
    expect(ms).toBeGreaterThanOrEqual(limits.headersTimeoutMs - 50);
    expect(ms).toBeLessThan(limits.headersTimeoutMs + LATE_MS);
    expect(statusOf(c.received())).toBe(408);
  });

  it('a body that trickles is cut off after the request timeout, and creates nothing', async () => {
    const port = await startApi(limits);
    const c = await connect(port);
    c.socket.write('POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":"slow-body-marker","payload":"');
    trickle(c.socket, 'a', 50);
    const ms = await c.closed;
    expect(ms).toBeGreaterThanOrEqual(limits.requestTimeoutMs - 50);
    expect(ms).toBeLessThan(limits.requestTimeoutMs + LATE_MS);
    // Node answers 408 (the app had not answered yet) and closes; no task was created.
    expect(statusOf(c.received())).toBe(408);
    const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE type = 'slow-body-marker'");
    expect(rows[0].n).toBe(0);
  });

  it('what arrives after a 408 is not read: the timed-out request can never complete behind its answer', async () => {
    const port = await startApi(limits);
    // Half-open, as a client whose rest of the body was already on its way when the 408 came.
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.add(socket);
    socket.on('error', () => undefined);
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    const body = '{"type":"after-408-marker"}';
    await new Promise((r) => socket.once('connect', r));
    socket.write(`POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
    await waitFor(async () => statusOf(data) === 408, limits.requestTimeoutMs + LATE_MS + 1000, 'the 408');
    socket.write(body.slice(5));
    await new Promise((r) => setTimeout(r, 500));
    const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE type = 'after-408-marker'");
    expect(rows[0].n).toBe(0);
    expect(data.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('a client that is slow but within the timeouts is served', async () => {
    const port = await startApi(limits);
    const c = await connect(port);
    const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    for (const ch of request) {
      c.socket.write(ch);
      await new Promise((r) => setTimeout(r, 400 / request.length));
    }
    await waitFor(async () => c.received().includes('\r\n\r\n'), 3000, 'the response');
    expect(statusOf(c.received())).toBe(200);
  });
});

describe('2,000 slow sockets', () => {
  it('leave GET /healthz and POST /tasks answering within a second', async () => {
    // Timeouts longer than the test, so every slow socket is still open while we measure.
    const port = await startApi({ headersTimeoutMs: 30_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5000, maxConnections: 5000 });
    const slow: Conn[] = [];
    for (let i = 0; i < 2000; i++) {
      const c = await connect(port);
      // Half never finish their headers; half send a body that never finishes.
      if (i % 2 === 0) c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      else c.socket.write('POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":"noop","payload":"');
      slow.push(c);
    }
    // All of them keep trickling: one byte per socket every 500 ms.
    let next = 0;
    const timer = setInterval(() => {
      for (let k = 0; k < 40; k++) {
        const c = slow[next++ % slow.length]!;
        if (!c.socket.destroyed) c.socket.write(next % 2 === 0 ? 'X' : 'a');
      }
    }, 10);
    timers.add(timer);
    await new Promise((r) => setTimeout(r, 300));

    let t0 = Date.now();
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    const healthMs = Date.now() - t0;
    t0 = Date.now();
    const posted = await fetch(`http://127.0.0.1:${port}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
    const postMs = Date.now() - t0;

    expect([health.status, posted.status]).toEqual([200, 201]);
    expect(healthMs).toBeLessThan(1000);
    expect(postMs).toBeLessThan(1000);
    expect(slow.filter((c) => c.socket.destroyed || c.received() !== '').length).toBe(0);
  }, 60_000);
});

describe('HTTP_MAX_CONNECTIONS', () => {
  it('closes connection N+1 at once while the first N are served, and admits again once one closes', async () => {
    const N = 3;
    const port = await startApi({ headersTimeoutMs: 5000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 10_000, maxConnections: N });
    const first: Conn[] = [];
    for (let i = 0; i < N; i++) first.push(await connect(port));
    for (const c of first) expect(await roundTrip(c)).toBe(200);

    const extra = await connect(port);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await extra.closed).toBeLessThan(1000);
    expect(extra.received()).toBe('');

    // The earlier connections still work (keep-alive).
    for (const c of first) expect(await roundTrip(c)).toBe(200);

    first[0]!.socket.destroy();
    await first[0]!.closed;
    const again = await waitFor(async () => {
      const c = await connect(port);
      c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      const ok = await Promise.race([c.closed.then(() => false), headersIn(c.socket)]);
      return ok ? c : null;
    }, 5000, 'a connection admitted after one closed');
    expect(statusOf(again.received())).toBe(200);
  });
});
