/** Starts and stops the API's HTTP server; tests listen on port 0 through the same path. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { close, listen } from '../core/process/lifecycle';

export interface RunningServer {
  address: AddressInfo;
  /** Stops accepting connections and waits for in-flight requests to finish. */
  stop(): Promise<void>;
}

/** What a slow or greedy client may hold (HTTP_* settings). */
export interface ServerLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, maxConnections: 10_000 };

export async function startServer(app: http.RequestListener, addr: string, limits: ServerLimits = DEFAULT_LIMITS): Promise<RunningServer> {
  // Node checks the header and request timeouts on this cadence; its 30 s default let a slow
  // header hold a socket for up to 30 s past its timeout.
  const server = http.createServer({ connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 2))) }, app);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  const address = await listen(server, addr);
  return { address, stop: () => close(server) };
}
