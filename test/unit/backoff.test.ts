import { backoffDelayMs, maxAttempts } from '../../services/core/tasks/backoff';

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
