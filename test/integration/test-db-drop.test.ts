/**
 * The test support's database teardown (test-env.ts): `pool.end()` resolves before its connections
 * have closed (pg-pool sends each its Terminate and does not wait), and a DROP DATABASE WITH (FORCE)
 * issued then terminated a backend that had not read its Terminate yet. The FATAL reached the
 * ended pool, which re-emits a client's error as its own 'error' with no listener left: an
 * uncaught exception, blamed by jest on the test that had opened the connection (client.test.ts's
 * "a submission whose answer is lost…", the first to use its pool, failed so under load).
 */
import net from 'node:net';
import { Pool } from 'pg';
import { createTestDatabase } from '../support/test-env';

/** A TCP proxy to Postgres that can hold what the client sends (as a busy machine delays it). */
async function holdingProxy(target: URL): Promise<{ port: number; hold(): void; release(): void; close(): Promise<void> }> {
  const { hostname, port } = target;
  let holding = false;
  const held: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  // Half-open allowed: a client that sent its Terminate and FIN still reads what Postgres sends.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('data', (chunk) => (holding ? held.push(() => upstream.write(chunk)) : upstream.write(chunk)));
    client.on('end', () => (holding ? held.push(() => upstream.end()) : upstream.end()));
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold: () => void (holding = true),
    release: () => {
      holding = false;
      for (const send of held.splice(0)) send();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

it('dropping a database right after its pool ended does not terminate the connections still closing', async () => {
  const db = await createTestDatabase();
  const url = new URL(db.url);
  const proxy = await holdingProxy(url);
  url.host = `127.0.0.1:${proxy.port}`;
  const pool = new Pool({ connectionString: url.toString(), max: 2 });
  const errors: string[] = [];
  pool.on('error', (err) => errors.push(err.message));
  try {
    await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 2')]);
    // The backends have not read their Terminate yet when the drop begins.
    proxy.hold();
    await pool.end();
    const dropping = db.drop();
    setTimeout(() => proxy.release(), 500);
    await dropping;
    expect(errors).toEqual([]);
  } finally {
    proxy.release();
    await proxy.close();
    await db.drop();
  }
});
