/**
 * Retry backoff. The environment's policy (RETRY_BASE_MS·2^(n-1), capped at RETRY_MAX_MS, plus
 * uniform jitter up to RETRY_JITTER_MS) applies unless a task or its handler sets its own
 * (RetryPolicy): exponential, linear or fixed from base_ms, capped at max_ms, with full, equal or
 * no jitter. Fields a policy leaves out come from the environment.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  jitterMs: number;
}

export const BACKOFFS = ['exponential', 'linear', 'fixed'] as const;
export const JITTERS = ['full', 'equal', 'none'] as const;

/** A task's or a handler's retry policy, as POST /tasks takes it (every field optional). */
export interface RetryPolicy {
  backoff?: (typeof BACKOFFS)[number];
  base_ms?: number;
  max_ms?: number;
  jitter?: (typeof JITTERS)[number];
}

/** Delay before the retry that follows failed attempt `attempt` (1-based). `random` is injectable for tests. */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 52);
  const base = Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
  return Math.floor(base + random() * policy.jitterMs);
}

/** The delay under a task's or handler's policy; without one, the environment's (backoffDelayMs). */
export function retryDelayMs(env: BackoffPolicy, policy: RetryPolicy | undefined, attempt: number, random: () => number = Math.random): number {
  if (!policy) return backoffDelayMs(env, attempt, random);
  const n = Math.max(attempt, 1);
  const base = policy.base_ms ?? env.baseMs;
  const max = policy.max_ms ?? Math.max(env.maxMs, base);
  const backoff = policy.backoff ?? 'exponential';
  const raw = backoff === 'fixed' ? base : backoff === 'linear' ? base * n : base * 2 ** Math.min(n - 1, 52);
  const d = Math.min(max, raw);
  switch (policy.jitter) {
    case 'full':
      return Math.floor(random() * d);
    case 'equal':
      return Math.floor(d / 2 + random() * (d / 2));
    case 'none':
      return Math.floor(d);
    default:
      // Not set: the environment's jitter, added, within max_ms (the README: no delay is longer).
      return Math.floor(Math.min(max, d + random() * env.jitterMs));
  }
}

/**
 * A task may run max_retries + 1 times; one an operator retried gets that many more after the
 * attempts counted before (`retryBase`: attempt numbers keep counting up).
 */
export function maxAttempts(maxRetries: number, retryBase = 0): number {
  return retryBase + maxRetries + 1;
}
