/** Process entrypoint plumbing shared by the services: start-up failures and signal-driven shutdown. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
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
 * `forceAfterMs`, exits 1 anyway when stopping takes longer, saying so: what was still in flight
 * (a slow request, a push to Redis) was cut off, which an operator must be able to see. `limit`
 * names that bound in the warning.
 */
export function exitOnSignals(log: Logger, stop: () => Promise<unknown>, forceAfterMs?: number, limit = 'SHUTDOWN_GRACE_MS'): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    if (forceAfterMs !== undefined) {
      setTimeout(() => {
        log.warn({ graceMs: forceAfterMs }, `stopping took longer than ${limit}: exiting with work still in flight`);
        process.exit(1);
      }, forceAfterMs).unref();
    }
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

/** The open connections of each server started by listen(), for close(). */
const connections = new WeakMap<http.Server, Set<Socket>>();

/** The response to the newest request on a connection (pipelined requests queue behind the current one). */
const NEWEST = Symbol('newest response');
type Tracked = Socket & { [NEWEST]?: http.ServerResponse };

/** Listens on `[host]:port` and resolves with the bound address (port 0 picks a free one). */
export async function listen(server: http.Server, addr: string): Promise<AddressInfo> {
  const { host, port } = splitAddr(addr);
  const open = new Set<Socket>();
  connections.set(server, open);
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    (req.socket as Tracked)[NEWEST] = res;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server.address() as AddressInfo;
}

/**
 * Stops accepting connections, closes idle keep-alive ones, and resolves when in-flight requests
 * are done. Node closes only idle connections: one busy with a request at the time stayed open
 * after its answer until its keep-alive timeout (65 s), beyond SHUTDOWN_GRACE_MS, so the API was
 * killed instead of stopping (cutting off requests sent on it meanwhile). The last answer on such
 * a connection now says `Connection: close` and ends it; requests pipelined before it are
 * answered first.
 */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    const ending = new Ending(server);
    // Requests that begin from now on (a client's next one on a busy connection, pipelined ones).
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => ending.newest(req.socket as Tracked, res));
    for (const socket of connections.get(server) ?? []) {
      const res = (socket as Tracked)[NEWEST];
      if (res && !res.writableEnded) ending.newest(socket as Tracked, res);
    }
    server.closeIdleConnections();
  });
}

/** Ends each connection after its newest answer. */
class Ending {
  /** Responses told to close their connection, with the keep-alive they had. */
  private readonly told = new WeakMap<http.ServerResponse, boolean>();

  constructor(private readonly server: http.Server) {}

  newest(socket: Tracked, res: http.ServerResponse): void {
    // A request pipelined behind one told to close: that one keeps the connection for this one
    // (closing after it would drop this answer, though the request was taken).
    const before = socket[NEWEST];
    if (before && before !== res && this.told.has(before) && !before.headersSent) before.shouldKeepAlive = this.told.get(before)!;
    // Answered with `Connection: close` when its headers are not out yet; Node then ends the connection.
    if (!res.headersSent) {
      if (!this.told.has(res)) this.told.set(res, res.shouldKeepAlive);
      res.shouldKeepAlive = false;
    }
    // Otherwise (a streamed answer) its connection is idle once the answer is out.
    else res.once('finish', () => setImmediate(() => this.server.closeIdleConnections()));
  }
}
