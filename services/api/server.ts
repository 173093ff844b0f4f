/** Starts and stops the API's HTTP server; tests listen on port 0 through the same path. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { splitAddr } from '../core/config/parsers';

export interface RunningServer {
  address: AddressInfo;
  /** Stops accepting connections and waits for in-flight requests to finish. */
  stop(): Promise<void>;
}

export async function startServer(app: Express, addr: string): Promise<RunningServer> {
  const server = http.createServer(app);
  server.keepAliveTimeout = 65_000; // longer than common load-balancer idle timeouts
  const { host, port } = splitAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: server.address() as AddressInfo,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
