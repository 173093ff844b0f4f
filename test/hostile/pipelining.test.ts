/**
 * Requests pipelined on one keep-alive connection: they are handled one at a time, so a client that
 * pipelines hundreds of reads of a large task holds one answer in the making, not hundreds (each
 * built and kept in memory, every pool connection taken, while it reads nothing). Answers come in
 * order, each with its own request id; those beyond what may wait are 503 with Retry-After and did
 * nothing, so every 201 is exactly one task and nothing else is created.
 */
import net from 'node:net';
import type { RequestListener } from 'node:http';
import { createApp } from '../../services/api/app';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
let server: RunningServer;
/** Requests the app is handling at once, and the most seen. */
let active = 0;
let mostActive = 0;

beforeAll(async () => {
  stack = await createStack();
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: stack.cfg.MAX_BODY_BYTES, defaultMaxRetries: 5, idempotencyTtlMs: 60_000 });
  const counted: RequestListener = (req, res) => {
    active++;
    mostActive = Math.max(mostActive, active);
    // Ahead of server.ts's own listener, which starts the connection's next request.
    res.prependOnceListener('close', () => active--);
    app(req, res);
  };
  server = await startServer(counted, '127.0.0.1:0');
});
afterAll(async () => {
  await server.stop();
  await stack.close();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Writes `requests` at once on one connection and reads their `requests.length` answers. */
function pipelined(requests: string[]): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const answers: Answer[] = [];
    let buf = Buffer.alloc(0);
    const s = net.connect(server.address.port, '127.0.0.1', () => s.write(requests.join('')));
    s.on('error', reject);
    s.on('close', () => reject(new Error(`connection closed after ${answers.length} of ${requests.length} answers`)));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const length = Number(headers['content-length']);
        if (buf.length < end + 4 + length) return;
        answers.push({ status: Number(line!.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + length).toString('utf8') });
        buf = buf.subarray(end + 4 + length);
        if (answers.length === requests.length) {
          s.removeAllListeners('close');
          s.destroy();
          resolve(answers);
          return;
        }
      }
    });
  });
}

it('200 pipelined reads of a 200 KB task are handled one at a time, answered in order with their own request ids', async () => {
  const created = await fetch(`http://127.0.0.1:${server.address.port}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'noop', payload: { blob: 'x'.repeat(200_000) } }),
  });
  const { id } = (await created.json()) as { id: string };
  mostActive = 0;
  const answers = await pipelined(Array.from({ length: 200 }, (_, i) => `GET /tasks/${id} HTTP/1.1\r\nHost: x\r\nX-Request-Id: read-${i}\r\n\r\n`));

  expect(mostActive).toBe(1);
  expect(answers.map((a) => a.headers['x-request-id'])).toEqual(answers.map((_, i) => `read-${i}`));
  for (const a of answers) {
    if (a.status === 200) expect((JSON.parse(a.body) as { id: string }).id).toBe(id);
    else {
      expect(a.status).toBe(503);
      expect(a.headers['retry-after']).toBe('1');
      expect(a.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect((JSON.parse(a.body) as { status: number }).status).toBe(503);
    }
  }
  expect(answers[0]!.status).toBe(200);
});

it('of 100 pipelined submissions, each 201 is exactly one task and each 503 made none', async () => {
  const body = (i: number) => JSON.stringify({ type: 'noop', payload: { marker: 'pipelined', i } });
  const answers = await pipelined(
    Array.from({ length: 100 }, (_, i) => `POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: post-${i}\r\nContent-Length: ${Buffer.byteLength(body(i))}\r\n\r\n${body(i)}`),
  );
  expect(answers.map((a) => a.headers['x-request-id'])).toEqual(answers.map((_, i) => `post-${i}`));
  expect(answers.every((a) => a.status === 201 || a.status === 503)).toBe(true);
  const told = answers.flatMap((a, i) => (a.status === 201 ? [`${i}:${(JSON.parse(a.body) as { id: string }).id}`] : []));
  const { rows } = await stack.pool.query<{ row: string }>("SELECT (payload->>'i') || ':' || id::text AS row FROM tasks WHERE payload->>'marker' = 'pipelined'");
  expect(rows.map((r) => r.row).sort()).toEqual(told.sort());
});

describe('a broken request pipelined behind whole ones', () => {
  /** Writes `raw` and reads until the server closes the connection. */
  const exchange = (raw: string): Promise<string> =>
    new Promise((resolve, reject) => {
      let data = '';
      const s = net.connect(server.address.port, '127.0.0.1', () => s.write(raw));
      s.on('data', (d: Buffer) => (data += d.toString('utf8')));
      s.on('error', reject);
      s.on('close', () => resolve(data));
    });
  const post = (marker: string) => {
    const body = JSON.stringify({ type: 'noop', payload: { marker } });
    return `POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  };

  it.each([
    ['bytes that are not HTTP', 'GARBAGE\r\n\r\n', 400],
    ['headers over 16 KiB', `GET /tasks HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ])('%s: the whole ones are answered first, each 201 is its task, then the failure, then the connection closes', async (_what, bad, status) => {
    const marker = `broken-behind-${status}`;
    const data = await exchange(post(marker) + post(marker) + bad);
    const statuses = [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([201, 201, status]);
    const told = [...data.matchAll(/"id":"([0-9a-f-]{36})"/g)].map((m) => m[1]);
    const { rows } = await stack.pool.query<{ id: string }>("SELECT id::text FROM tasks WHERE payload->>'marker' = $1", [marker]);
    expect(rows.map((r) => r.id).sort()).toEqual(told.sort());
  });
});
