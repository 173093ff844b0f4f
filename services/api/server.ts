/** Starts and stops the API's HTTP server; tests listen on port 0 through the same path. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { close, listen } from '../core/process/lifecycle';

export interface RunningServer {
  address: AddressInfo;
  /** Stops accepting connections and waits for in-flight requests to finish. */
  stop(): Promise<void>;
}

export async function startServer(app: http.RequestListener, addr: string): Promise<RunningServer> {
  const server = http.createServer(app);
  server.keepAliveTimeout = 65_000; // longer than common load-balancer idle timeouts
  const address = await listen(server, addr);
  return { address, stop: () => close(server) };
}
