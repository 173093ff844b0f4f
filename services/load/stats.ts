/** Small, dependency-free statistics for the summary: percentiles, the in-flight sweep, formatting. */

/**
 * Nearest-rank percentile: the smallest value with at least p% of the values at or below it
 * (p in (0, 100]; p = 0 gives the minimum). `sorted` must be ascending. null for no values.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted[n - 1]!;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

export interface Spread {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

export function spread(values: ArrayLike<number>): Spread {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    count: n,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: n ? sorted[n - 1]! : null,
    mean: n ? sum / n : null,
  };
}

/**
 * The most intervals open at once (sweep line). Intervals are half-open [start, end): one that ends
 * exactly when another starts does not overlap it. An interval with end null is still open (counts
 * until `openUntil`). Intervals with end < start are treated as instants at start.
 *
 * With `cap`, intervals of one `group` count at most `cap` at once: a worker never runs more than
 * its slots, and times known only to the millisecond make its sub-millisecond runs within one
 * millisecond look simultaneous.
 */
export function maxConcurrent(intervals: Iterable<{ start: number; end: number | null; group?: string }>, openUntil = Infinity, cap = Infinity): number {
  // Event order at one instant: ends of intervals that had length, then starts, then ends of
  // zero-length intervals (so an instant run still counts once, and back-to-back runs do not overlap).
  const END = 0;
  const START = 1;
  const END_INSTANT = 2;
  const events: [number, number, string][] = [];
  for (const iv of intervals) {
    const end = Math.max(iv.end ?? openUntil, iv.start);
    const group = iv.group ?? '';
    events.push([iv.start, START, group], [end, end === iv.start ? END_INSTANT : END, group]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const open = new Map<string, number>();
  let counted = 0;
  let peak = 0;
  for (const [, kind, group] of events) {
    const before = open.get(group) ?? 0;
    const after = before + (kind === START ? 1 : -1);
    open.set(group, after);
    counted += Math.min(cap, after) - Math.min(cap, before);
    if (counted > peak) peak = counted;
  }
  return peak;
}

/** 1234.5 → "1.23 s", 12.3 → "12 ms", 95000 → "1m 35s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const totalS = Math.round(ms / 1000);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m ${String(s).padStart(2, '0')}s` : `${m}m ${String(s).padStart(2, '0')}s`;
}

export function formatRate(perS: number | null | undefined, unit = 'tasks/s'): string {
  if (perS === null || perS === undefined || !Number.isFinite(perS)) return '–';
  return `${perS >= 100 ? Math.round(perS) : perS.toFixed(1)} ${unit}`;
}

export function formatPct(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return '–';
  return `${p.toFixed(1)}%`;
}

/** Rounds for JSON output: 3 decimals, null stays null. */
export function round3(v: number | null | undefined): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  return Math.round(v * 1000) / 1000;
}
