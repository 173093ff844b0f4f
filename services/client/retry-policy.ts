/**
 * When a failed call is sent again and how long the client waits first. 429 and 503 answers are
 * retried (a 429 only with Retry-After: without it, e.g. a batch over the tenant's burst, waiting
 * never helps); connection errors only for calls that are safe to repeat.
 */
export interface RetryOptions {
  /** Sends after the first; 0 disables retrying. Default 4. */
  maxRetries?: number;
  /** First backoff when the answer names no Retry-After; doubles per retry. Default 250 ms. */
  baseDelayMs?: number;
  /** Longest single wait; a Retry-After beyond it ends the retries (the error is thrown). Default 30 s. */
  maxDelayMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { maxRetries: 4, baseDelayMs: 250, maxDelayMs: 30_000 };

/** The longest timer Node keeps: a longer one fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * The caller's options over the defaults. An option given as undefined takes its default (a spread
 * would keep the undefined, and `retry >= undefined` never ends the retries); a value that is no
 * count or duration is refused, not left to retry without end or without a pause.
 */
export function retryOptions(given: RetryOptions = {}): Required<RetryOptions> {
  const out = { ...DEFAULT_RETRY };
  for (const name of Object.keys(DEFAULT_RETRY) as (keyof RetryOptions)[]) {
    const v = given[name];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_TIMER_MS || (name === 'maxRetries' && !Number.isInteger(v))) {
      throw new TypeError(`retry.${name} must be a ${name === 'maxRetries' ? 'whole number' : 'number of milliseconds'} from 0 to ${MAX_TIMER_MS}, got ${String(v)}`);
    }
    out[name] = v;
  }
  return out;
}

/** How a call may be repeated: `safe` after any failure, `refusals` only after a 429 (nothing was done). */
export type Repeatability = 'safe' | 'refusals';

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3), in ms from `nowMs`; null if absent or malformed. */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  // Date.parse also takes forms that are no HTTP date (e.g. "1"); require a weekday and a time.
  // Its three forms (IMF, RFC 850, asctime) are all GMT; asctime does not say so.
  if (!/^[A-Za-z]{3,9},? .*\d{1,2}:\d{2}:\d{2}/.test(text)) return null;
  const at = Date.parse(/GMT$/.test(text) ? text : `${text} GMT`);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** Exponential backoff with "equal jitter": half the step fixed, half random, so clients spread out. */
export function backoffMs(retry: number, opts: Required<RetryOptions>, random: () => number = Math.random): number {
  const step = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** retry);
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * The wait before retry number `retry` (0-based), or null when the failure is not to be retried.
 * `status` is the answer's status, or null for a connection error.
 */
export function retryDelay(
  failure: { status: number | null; retryAfter: string | null },
  retry: number,
  repeat: Repeatability,
  opts: Required<RetryOptions>,
  nowMs = Date.now(),
): number | null {
  if (retry >= opts.maxRetries) return null;
  const { status } = failure;
  const after = parseRetryAfter(failure.retryAfter, nowMs);
  if (status === 429) {
    if (after === null || after > opts.maxDelayMs) return null;
    // A little jitter on top, so clients told the same second do not all come back at once.
    return after + Math.round(Math.random() * Math.min(1000, after * 0.1 + 50));
  }
  if (repeat !== 'safe') return null;
  if (status === 503) {
    if (after !== null) return after > opts.maxDelayMs ? null : after;
    return backoffMs(retry, opts);
  }
  if (status === null) return backoffMs(retry, opts);
  return null;
}
