/**
 * A TCP proxy in front of a real server whose path can go silent: after stall(), bytes in either
 * direction are held back and the connections stay open, as across a network partition (no reset,
 * so the client's calls neither fail nor return). resume() delivers what was held back.
 */
import net from 'node:net';

export interface StallProxy {
  /** host:port to connect to. */
  addr: string;
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const at = target.lastIndexOf(':');
  const host = target.slice(0, at) || '127.0.0.1';
  const port = Number(target.slice(at + 1));
  let stalled = false;
  const held: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  const pass = (to: net.Socket) => (chunk: Buffer) => {
    if (stalled) held.push(() => to.write(chunk));
    else to.write(chunk);
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('data', pass(upstream));
    upstream.on('data', pass(client));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    addr: `127.0.0.1:${own}`,
    stall: () => void (stalled = true),
    resume: () => {
      stalled = false;
      for (const send of held.splice(0)) send();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
