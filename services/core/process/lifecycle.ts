/** Process entrypoint plumbing shared by the services: start-up failures and signal-driven shutdown. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../config/config';
import { splitAddr } from '../config/parsers';
import { safeError, safeErrorText, type Logger } from '../observability/logger';

/** Runs `main`; a failure to start prints one clear line (the config problems, or the stack) and exits 1. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    // safeError: the failure may be a pg or ioredis error carrying values (see logger.ts).
    const text = err instanceof ConfigError ? err.message : `${service} failed to start: ${startFailure(err)}`;
    process.stderr.write(`${text}\n`);
    process.exit(1);
  });
}

function startFailure(err: unknown): string {
  const safe = safeError(err);
  return safe !== null && typeof safe === 'object' && safe.stack ? safe.stack : safeErrorText(err);
}

/**
 * On the first SIGTERM or SIGINT runs `stop` once and exits 0 (1 if stopping failed). With
 * `forceAfterMs`, exits 0 anyway when stopping takes longer.
 */
export function exitOnSignals(log: Logger, stop: () => Promise<unknown>, forceAfterMs?: number): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    if (forceAfterMs !== undefined) setTimeout(() => process.exit(0), forceAfterMs).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Listens on `[host]:port` and resolves with the bound address (port 0 picks a free one). */
export async function listen(server: http.Server, addr: string): Promise<AddressInfo> {
  const { host, port } = splitAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server.address() as AddressInfo;
}

/** Stops accepting connections, closes idle keep-alive ones, and resolves when in-flight requests are done. */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
