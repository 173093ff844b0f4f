/**
 * A bare HTTP server for /metrics, separate from the API port as in the Go system. It also answers
 * /healthz (the process lives) and /readyz (its dependencies answer), for worker probes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import type { DependencyGauge } from './metrics';
import { pingPostgres } from '../db/readiness-pool';
import { close, listen } from '../process/lifecycle';
import { withTimeout } from '../process/with-timeout';

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
      readiness().then(
        (checks) => {
          const ok = Object.values(checks).every((v) => v === 'ok');
          json(ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', checks });
        },
        (err: unknown) => json(503, { status: 'unavailable', error: reason(err) }),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
    }
  });
  return { address: await listen(server, addr), close: () => close(server) };
}

/**
 * Postgres and Redis each answer within `timeoutMs` (READINESS_TIMEOUT_MS). `pool` should be the
 * check's own (createReadinessPool): on a pool shared with work, a busy pool fails the check.
 */
export function dependencyChecks(pool: Pool, queue: { ping(): Promise<void> }, timeoutMs = 1000): Promise<Record<string, string>> {
  return runChecks({ postgres: () => pingPostgres(pool, timeoutMs), redis: () => queue.ping() }, timeoutMs);
}

/** Runs the checks at once, each bounded by `timeoutMs`: 'ok' or why not, also recorded in `up`. */
export async function runChecks(checks: Record<string, () => Promise<unknown>>, timeoutMs: number, up?: DependencyGauge): Promise<Record<string, string>> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map((name) => withTimeout(Promise.resolve().then(checks[name]!), timeoutMs).then(() => 'ok', (e: unknown) => reason(e))),
  );
  names.forEach((name, i) => up?.set({ dependency: name }, results[i] === 'ok' ? 1 : 0));
  return Object.fromEntries(names.map((name, i) => [name, results[i]!]));
}

/** An error's message, or its code: a refused connection to both ::1 and 127.0.0.1 has no message. */
function reason(e: unknown): string {
  const err = (e ?? {}) as { message?: string; code?: string };
  return err.message || err.code || String(e);
}

