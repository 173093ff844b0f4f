/** The clock attempts are timed with. */
import { performance } from 'node:perf_hooks';

/**
 * Wall-clock time (ms since the epoch, sub-millisecond) of a performance.now() reading. A run is
 * recorded as [start, start + duration] on this one clock, so consecutive attempts in one slot
 * never appear to overlap (Date.now() truncates to the millisecond, and sub-millisecond attempts
 * would). The offset starts as performance.timeOrigin (precise) and is re-anchored when Date.now(),
 * read with the precise reading paired tightly, says it lies outside its millisecond: every
 * minute (the monotonic clock drifts from the wall clock by a few ppm), and at once when a
 * reading strays more than 2 ms from Date.now() (the wall clock stepped: a VM paused or moved).
 */
let clockOffset = performance.timeOrigin;
let clockCheckedAt = performance.now();

/** Tolerance of the coarse check on every reading: Date.now() is read after `perfNow`, and truncated. */
const STEP_MS = 2;

export function wallClockAt(perfNow: number): number {
  const t = perfNow + clockOffset;
  const now = Date.now();
  if (perfNow - clockCheckedAt > 60_000 || t < now - STEP_MS || t > now + STEP_MS) reanchor();
  return perfNow + clockOffset;
}

function reanchor(): void {
  clockCheckedAt = performance.now();
  const floor = Date.now() - clockCheckedAt; // the true offset is in [floor, floor + 1)
  if (clockOffset < floor || clockOffset >= floor + 1) clockOffset = floor + 0.5;
}
