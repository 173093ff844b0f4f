/**
 * A ConnectionError's `cause` is the socket's error, as README's "TypeScript client" says (not
 * undici's TypeError("fetch failed") around it), so a caller can tell a refused connection by its code.
 */
import net from 'node:net';
import { ConnectionError, TaskSchedulerClient } from '../../services/client';

it('a refused connection: cause.code is ECONNREFUSED', async () => {
  // A port just freed: nothing listens there.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));

  const c = new TaskSchedulerClient({ baseUrl: `http://127.0.0.1:${port}`, retry: { maxRetries: 0 } });
  const err = await c.get('00000000-0000-7000-8000-000000000000').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  expect((err as Error).message).toMatch(/ECONNREFUSED/);
  expect((err as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
});

it('no answer in time: cause is the TimeoutError', async () => {
  const silent = net.createServer(() => undefined);
  const sockets: net.Socket[] = [];
  silent.on('connection', (s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const c = new TaskSchedulerClient({ baseUrl: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, timeoutMs: 100, retry: { maxRetries: 0 } });
    const err = await c.get('00000000-0000-7000-8000-000000000000').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).cause).toMatchObject({ name: 'TimeoutError' });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});
