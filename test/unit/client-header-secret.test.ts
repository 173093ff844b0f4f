/**
 * An API key no HTTP header can carry (a line break inside it, two keys pasted together) is refused
 * by the client with a TypeError that names the header but never holds the key's text, in its
 * message or its cause: such errors end up in the caller's logs.
 */
import { TaskSchedulerClient } from '../../services/client';

const SECRET = 'Q'.repeat(43);

it('a key with a line break inside is a TypeError naming the header, without the key', async () => {
  let sends = 0;
  const fake = (async () => (sends++, new Response('{}', { status: 200 }))) as unknown as typeof fetch;
  for (const apiKey of [`tsk_0123456789abcdef_${SECRET}\ntsk_fedcba9876543210_${SECRET}`, `tsk_0123456789abcdef_${SECRET.slice(0, 20)}\0${SECRET.slice(20)}`]) {
    const c = new TaskSchedulerClient({ baseUrl: 'http://127.0.0.1:1', apiKey, fetch: fake });
    const err = (await c.queues().catch((e: unknown) => e)) as Error & { cause?: unknown };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toMatch(/^GET \/queues: /);
    expect(err.message).toMatch(/authorization/i);
    const seen = `${err.message} ${String(err.stack)} ${err.cause instanceof Error ? `${err.cause.message} ${String(err.cause.stack)}` : String(err.cause ?? '')}`;
    expect(seen).not.toContain(SECRET.slice(0, 20));
  }
  expect(sends).toBe(0);
});
