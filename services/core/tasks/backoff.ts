/** Retry backoff: RETRY_BASE_MS·2^(n-1), capped at RETRY_MAX_MS, plus uniform jitter up to RETRY_JITTER_MS. */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  jitterMs: number;
}

/** Delay before the retry that follows failed attempt `attempt` (1-based). `random` is injectable for tests. */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 52);
  const base = Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
  return Math.floor(base + random() * policy.jitterMs);
}

/**
 * A task may run max_retries + 1 times; one an operator retried gets that many more after the
 * attempts counted before (`retryBase`: attempt numbers keep counting up).
 */
export function maxAttempts(maxRetries: number, retryBase = 0): number {
  return retryBase + maxRetries + 1;
}
