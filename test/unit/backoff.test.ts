import { backoffDelayMs, maxAttempts, RetryPolicy, retryDelayMs } from '../../services/core/tasks/backoff';

const policy = { baseMs: 500, maxMs: 30000, jitterMs: 500 };

describe('backoffDelayMs', () => {
  it('doubles from the base per failed attempt', () => {
    const noJitter = () => 0;
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(policy, a, noJitter))).toEqual([500, 1000, 2000, 4000, 8000]);
  });

  it('caps the exponential part at maxMs, then adds jitter', () => {
    expect(backoffDelayMs(policy, 7, () => 0)).toBe(30000);
    expect(backoffDelayMs(policy, 60, () => 0)).toBe(30000);
    expect(backoffDelayMs(policy, 60, () => 0.999999)).toBe(30499);
  });

  it('adds uniform jitter below jitterMs', () => {
    const seen = Array.from({ length: 200 }, () => backoffDelayMs(policy, 1));
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...seen)).toBeLessThan(1000);
    expect(new Set(seen).size).toBeGreaterThan(50);
  });

  it('treats attempt numbers below 1 as the first attempt', () => {
    expect(backoffDelayMs(policy, 0, () => 0)).toBe(500);
  });

  it('allows max_retries + 1 attempts', () => {
    expect(maxAttempts(0)).toBe(1);
    expect(maxAttempts(5)).toBe(6);
  });
});

describe('retryDelayMs: a task’s or handler’s policy', () => {
  const at = (p: RetryPolicy, random: number) => [1, 2, 3, 4].map((a) => retryDelayMs(policy, p, a, () => random));

  it('without a policy is the environment’s', () => {
    expect(retryDelayMs(policy, undefined, 3, () => 0.5)).toBe(backoffDelayMs(policy, 3, () => 0.5));
  });

  it('exponential, linear and fixed, capped at max_ms, with no jitter', () => {
    expect(at({ backoff: 'exponential', base_ms: 100, max_ms: 500, jitter: 'none' }, 0.9)).toEqual([100, 200, 400, 500]);
    expect(at({ backoff: 'linear', base_ms: 100, max_ms: 350, jitter: 'none' }, 0.9)).toEqual([100, 200, 300, 350]);
    expect(at({ backoff: 'fixed', base_ms: 250, jitter: 'none' }, 0.9)).toEqual([250, 250, 250, 250]);
  });

  it('full jitter draws from [0, d]; equal from [d/2, d]', () => {
    expect(at({ backoff: 'fixed', base_ms: 1000, jitter: 'full' }, 0)).toEqual([0, 0, 0, 0]);
    expect(at({ backoff: 'fixed', base_ms: 1000, jitter: 'full' }, 0.999)).toEqual([999, 999, 999, 999]);
    expect(at({ backoff: 'fixed', base_ms: 1000, jitter: 'equal' }, 0)).toEqual([500, 500, 500, 500]);
    expect(at({ backoff: 'fixed', base_ms: 1000, jitter: 'equal' }, 0.999)).toEqual([999, 999, 999, 999]);
  });

  it('takes what it leaves out from the environment (jitter: added up to RETRY_JITTER_MS)', () => {
    expect(retryDelayMs(policy, { backoff: 'linear' }, 2, () => 0.5)).toBe(500 * 2 + 250);
    expect(retryDelayMs(policy, { base_ms: 10 }, 1, () => 0)).toBe(10);
  });

  it('max_ms bounds the delay also with the environment\'s jitter added (no delay is longer)', () => {
    expect(retryDelayMs(policy, { base_ms: 1000, max_ms: 1000 }, 3, () => 0.999)).toBe(1000);
    expect(retryDelayMs(policy, { backoff: 'fixed', base_ms: 800, max_ms: 1000 }, 1, () => 0.999)).toBe(1000);
    expect(retryDelayMs(policy, { backoff: 'fixed', base_ms: 800, max_ms: 1000 }, 1, () => 0)).toBe(800);
  });
});
