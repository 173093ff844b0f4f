/**
 * The client's retry options: one given as undefined (`{ maxRetries: cfg.retries }` with nothing
 * set) takes its default, and values that are no count or duration are refused at construction,
 * so a call against an API that is down ends after the bounded retries instead of never.
 */
import { ConnectionError, TaskSchedulerClient } from '../../services/client';

/** A fetch whose sends all fail as a refused connection, until the 100th, which is answered 400 (not retried). */
function failing(): { fetch: typeof fetch; sends: () => number } {
  let sends = 0;
  const fake = (async () => {
    if (++sends >= 100) return new Response('{"title":"stop"}', { status: 400 });
    throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
  }) as typeof fetch;
  return { fetch: fake, sends: () => sends };
}

it('options given as undefined take their defaults: four retries, then the ConnectionError', async () => {
  const f = failing();
  const c = new TaskSchedulerClient({ baseUrl: 'http://127.0.0.1:1', fetch: f.fetch, retry: { maxRetries: undefined, baseDelayMs: 1, maxDelayMs: undefined } });
  const err = await c.get('00000000-0000-7000-8000-000000000000').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  expect(f.sends()).toBe(5);
});

it('a base delay given as undefined backs off (it does not retry at once)', async () => {
  const f = failing();
  const delays: number[] = [];
  const c = new TaskSchedulerClient({ baseUrl: 'http://127.0.0.1:1', fetch: f.fetch, retry: { maxRetries: 1, baseDelayMs: undefined }, onRetry: (i) => delays.push(i.delayMs) });
  await expect(c.get('00000000-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(ConnectionError);
  expect(delays).toHaveLength(1);
  expect(delays[0]).toBeGreaterThanOrEqual(125);
});

it.each([
  [{ retry: { maxRetries: NaN } }, /retry\.maxRetries must be a whole number/],
  [{ retry: { maxRetries: -1 } }, /retry\.maxRetries/],
  [{ retry: { maxRetries: 1.5 } }, /retry\.maxRetries/],
  [{ retry: { maxRetries: Infinity } }, /retry\.maxRetries/],
  [{ retry: { baseDelayMs: NaN } }, /retry\.baseDelayMs must be a number of milliseconds/],
  [{ retry: { maxDelayMs: -5 } }, /retry\.maxDelayMs/],
  [{ retry: { maxDelayMs: 3e9 } }, /retry\.maxDelayMs must be a number of milliseconds from 0 to 2147483647/],
  [{ timeoutMs: NaN }, /timeoutMs must be a number of milliseconds from 1 to 2147483647/],
  [{ timeoutMs: 0 }, /timeoutMs/],
  // A timer past 2^31 - 1 ms fires at once: every send would time out.
  [{ timeoutMs: 3e9 }, /timeoutMs/],
])('%p is refused at construction', (opts, message) => {
  expect(() => new TaskSchedulerClient({ baseUrl: 'http://127.0.0.1:1', ...opts })).toThrow(message);
});
