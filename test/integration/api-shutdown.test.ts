/**
 * Stopping the API while a client's keep-alive connection has a request in flight: the request is
 * answered, its connection is closed after the answer (so the client sends nothing more to a
 * stopping API), and stop() resolves then, not after the keep-alive timeout.
 */
import http from 'node:http';
import { createApp } from '../../services/api/app';
import { startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { gatedPool } from '../support/gated-pool';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

function post(port: number, agent: http.Agent, path: string, body: unknown): Promise<{ status: number; connection: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ port, host: '127.0.0.1', path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

// The fast path (exactly /tasks) and express's (a query string, which the fast path leaves to it).
it.each([
  ['the fast path', '/tasks'],
  ["express's route", '/tasks?tenant=default'],
])('a request in flight on a keep-alive connection at stop is answered, its connection closed, and stop() resolves at once (%s)', async (_name, path) => {
  const gated = gatedPool(stack.pool, 'create-tasks-unkeyed');
  const app = createApp({ pool: gated.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000 });
  // The default keep-alive timeout (65 s): stop() must not wait for it.
  const server = await startServer(app, '127.0.0.1:0');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const answer = post(server.address.port, agent, path, { type: 'noop' });
    await until(() => gated.stats.running === 1, 'the insert to reach Postgres');
    let stopped = false;
    const stopping = server.stop().then(() => (stopped = true));
    gated.release();
    const res = await answer;
    expect(res.status).toBe(201);
    expect(res.connection).toBe('close');
    await Promise.race([stopping, new Promise((r) => setTimeout(r, 2000))]);
    expect(stopped).toBe(true);
  } finally {
    agent.destroy();
    await server.stop();
  }
});
