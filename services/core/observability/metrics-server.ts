/**
 * A bare HTTP server for /metrics, separate from the API port as in the Go system. It also answers
 * /healthz (the process lives) and /readyz (its dependencies answer), for worker probes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import { close, listen } from '../process/lifecycle';

export interface MetricsServer {
  address: AddressInfo;
  close(): Promise<void>;
}

/** Each check answers 'ok' or the reason it failed. */
export type ReadinessChecks = () => Promise<Record<string, string>>;

export async function startMetricsServer(registry: Registry, addr: string, readiness?: ReadinessChecks): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (path === '/metrics') {
      registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
        .catch((err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`));
    } else if (path === '/healthz') {
      json(200, { status: 'ok' });
    } else if (path === '/readyz' && readiness) {
      readiness().then((checks) => {
        const ok = Object.values(checks).every((v) => v === 'ok');
        json(ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', checks });
      });
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
    }
  });
  return { address: await listen(server, addr), close: () => close(server) };
}

/** Postgres and Redis each answer within two seconds. */
export async function dependencyChecks(pool: Pool, queue: { ping(): Promise<void> }): Promise<Record<string, string>> {
  const [postgres, redis] = await Promise.all([
    withTimeout(pool.query('SELECT 1'), 2000).then(() => 'ok', (e: Error) => e.message),
    withTimeout(queue.ping(), 2000).then(() => 'ok', (e: Error) => e.message),
  ]);
  return { postgres, redis };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}
