/**
 * A TCP proxy in front of a real server that can lose answers: after dropAnswers(n), the next n
 * answers reach the proxy and are thrown away with the client's connection, as a network fault
 * after the server acted would. Everything else passes through untouched.
 */
import net from 'node:net';
import { Stack, stackWithApi, startApi } from './stack';

export interface LossyProxy {
  url: string;
  /** Loses the next n answers (each: the connection is destroyed when its first bytes arrive), after letting `pass` through. */
  dropAnswers(n: number, pass?: number): void;
  dropped(): number;
  close(): Promise<void>;
}

export async function startLossyProxy(target: string): Promise<LossyProxy> {
  const { hostname, port } = new URL(target);
  let toDrop = 0;
  let toPass = 0;
  let dropped = 0;
  // An answer may come in several chunks: one passed is followed to its end before counting the next.
  const passing = new WeakSet<net.Socket>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('data', (chunk) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    client.on('data', () => passing.delete(upstream));
    upstream.on('data', (chunk) => {
      if (toPass > 0 && !passing.has(upstream)) {
        toPass--;
        passing.add(upstream);
      }
      if (passing.has(upstream)) {
        client.write(chunk);
        return;
      }
      if (toDrop > 0) {
        toDrop--;
        dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    dropAnswers: (n, pass = 0) => {
      toDrop = n;
      toPass = pass;
    },
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A stack and an API for one test file, reached through a lossy proxy (read them inside a test):
 * the setup of the tests of a client or CLI whose answer was lost after the API acted.
 */
export function apiBehindLossyProxy(): { readonly stack: Stack; readonly api: Awaited<ReturnType<typeof startApi>>; readonly proxy: LossyProxy } {
  let proxy: LossyProxy | undefined;
  // Declared before the API's hooks, so it closes before the API stops.
  afterAll(async () => {
    await proxy?.close();
  });
  const fx = stackWithApi();
  beforeAll(async () => {
    proxy = await startLossyProxy(fx.api.url);
  });
  return {
    get stack() {
      return fx.stack;
    },
    get api() {
      return fx.api;
    },
    get proxy() {
      return proxy!;
    },
  };
}
