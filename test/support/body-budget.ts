/**
 * The request-body budget (MAX_INFLIGHT_BODY_BYTES) at work: an API taking keys whose bodies may
 * be `body` bytes, with room for two of them in flight, and clients that declare a full body and
 * hold it back.
 */
import net from 'node:net';
import type { Authenticator } from '../../services/api/auth/authenticator';
import { createApp } from '../../services/api/app';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { silentLog, Stack } from './stack';

export async function startBodyBudgetApi(stack: Stack, auth: Authenticator, body: number): Promise<{ url: string; server: RunningServer }> {
  const app = createApp({
    auth,
    pool: stack.pool,
    queue: stack.queue,
    log: silentLog,
    metrics: apiMetrics(createRegistry('api')),
    maxBodyBytes: body,
    maxWorkflowBodyBytes: body,
    maxInflightBodyBytes: 2 * body,
    defaultMaxRetries: stack.cfg.DEFAULT_MAX_RETRIES,
    idempotencyTtlMs: stack.cfg.IDEMPOTENCY_TTL_MS,
  });
  const server = await startServer(app, '127.0.0.1:0');
  return { url: `http://127.0.0.1:${server.address.port}`, server };
}

/**
 * Sends a POST head declaring `length` bytes of JSON body and the `first` of them, as a slow
 * client does; resolves `holdMs` later (time for the API to read the head and look the key up)
 * with the connection still open.
 */
export function trickleBody(port: number, path: string, opts: { length: number; first: string; authorization: string | null; holdMs: number }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      const auth = opts.authorization === null ? '' : `Authorization: ${opts.authorization}\r\n`;
      s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${opts.length}\r\n${auth}\r\n${opts.first}`);
      setTimeout(() => resolve(s), opts.holdMs);
    });
    s.on('error', reject);
  });
}
