/** The client's retry decisions: Retry-After in both forms, which failures are retried, bounded waits. */
import { backoffMs, DEFAULT_RETRY, parseRetryAfter, retryDelay } from '../../services/client/retry-policy';

const now = Date.parse('2026-01-01T00:00:00Z');
const opts = { ...DEFAULT_RETRY, maxDelayMs: 10_000 };

describe('parseRetryAfter', () => {
  it.each([
    ['3', 3000],
    [' 0 ', 0],
    ['Thu, 01 Jan 2026 00:00:05 GMT', 5000],
    // A date already past means "now".
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['Thursday, 01-Jan-26 00:00:02 GMT', 2000],
    ['Thu Jan  1 00:00:04 2026', 4000],
  ])('%j → %d ms', (value, ms) => expect(parseRetryAfter(value, now)).toBe(ms));

  it.each([[null], [undefined], [''], ['-1'], ['1.5'], ['soon'], ['2026-01-01']])('%j is none', (value) => expect(parseRetryAfter(value as string | null, now)).toBeNull());
});

describe('retryDelay', () => {
  it('429 waits Retry-After (plus a little jitter) and is not retried without one', () => {
    const d = retryDelay({ status: 429, retryAfter: '2' }, 0, 'refusals', opts, now)!;
    expect(d).toBeGreaterThanOrEqual(2000);
    expect(d).toBeLessThanOrEqual(2000 + 250);
    expect(retryDelay({ status: 429, retryAfter: null }, 0, 'safe', opts, now)).toBeNull();
  });

  it('a Retry-After beyond maxDelayMs ends the retries', () => {
    expect(retryDelay({ status: 429, retryAfter: '11' }, 0, 'safe', opts, now)).toBeNull();
    expect(retryDelay({ status: 503, retryAfter: 'Thu, 01 Jan 2026 00:01:00 GMT' }, 0, 'safe', opts, now)).toBeNull();
  });

  it('503 and connection errors only for calls safe to repeat', () => {
    expect(retryDelay({ status: 503, retryAfter: '1' }, 0, 'safe', opts, now)).toBe(1000);
    expect(retryDelay({ status: 503, retryAfter: '1' }, 0, 'refusals', opts, now)).toBeNull();
    expect(retryDelay({ status: null, retryAfter: null }, 0, 'safe', opts, now)).not.toBeNull();
    expect(retryDelay({ status: null, retryAfter: null }, 0, 'refusals', opts, now)).toBeNull();
  });

  it('other statuses are never retried, and retries stop at maxRetries', () => {
    for (const status of [400, 401, 403, 404, 409, 500, 502]) expect(retryDelay({ status, retryAfter: '1' }, 0, 'safe', opts, now)).toBeNull();
    expect(retryDelay({ status: 503, retryAfter: null }, opts.maxRetries - 1, 'safe', opts, now)).not.toBeNull();
    expect(retryDelay({ status: 503, retryAfter: null }, opts.maxRetries, 'safe', opts, now)).toBeNull();
  });
});

it('backoff doubles per retry within [step/2, step], capped at maxDelayMs', () => {
  const o = { maxRetries: 10, baseDelayMs: 100, maxDelayMs: 1000 };
  expect([0, 1, 2, 3, 8].map((r) => backoffMs(r, o, () => 0))).toEqual([50, 100, 200, 400, 500]);
  expect([0, 1, 2, 3, 8].map((r) => backoffMs(r, o, () => 1))).toEqual([100, 200, 400, 800, 1000]);
});
