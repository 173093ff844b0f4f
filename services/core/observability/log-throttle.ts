/**
 * Lines of one kind at most once per interval. A failure that every request meets (Redis away
 * while the API goes on accepting tasks) would otherwise be logged once per request, thousands of
 * lines a second under load; the first is logged at once, later ones once per interval, each
 * saying how many were held back since the line before.
 */
import type { Logger } from './logger';

export class LogThrottle {
  private lastAt = -Infinity;
  private held = 0;
  private heldItems = 0;

  constructor(private readonly everyMs = 10_000) {}

  /**
   * Whether to log this occurrence (of `items` things): the fields that say what was held back
   * since the last line logged, or null to hold this one back too.
   */
  take(items = 1): { suppressed: number; suppressedItems: number } | null {
    const now = performance.now();
    if (now - this.lastAt < this.everyMs) {
      this.held++;
      this.heldItems += items;
      return null;
    }
    const fields = { suppressed: this.held, suppressedItems: this.heldItems };
    this.lastAt = now;
    this.held = 0;
    this.heldItems = 0;
    return fields;
  }
}

/** One throttle per logger and kind, so each process (and each test's app) counts its own. */
const throttles = new WeakMap<Logger, Map<string, LogThrottle>>();

export function throttleFor(log: Logger, kind: string, everyMs?: number): LogThrottle {
  let byKind = throttles.get(log);
  if (!byKind) throttles.set(log, (byKind = new Map()));
  let t = byKind.get(kind);
  if (!t) byKind.set(kind, (t = new LogThrottle(everyMs)));
  return t;
}
