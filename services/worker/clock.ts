/** The clock attempts are timed with. */
import { performance } from 'node:perf_hooks';

/**
 * Wall-clock time (ms since the epoch, sub-millisecond) of a performance.now() reading. A run is
 * recorded as [start, start + duration] on this one clock, so consecutive attempts in one slot
 * never appear to overlap (Date.now() truncates to the millisecond, and sub-millisecond attempts
 * would). The offset starts as performance.timeOrigin (precise) and is checked every minute
 * against Date.now(), which says where it must lie to within a millisecond: if the monotonic
 * clock drifted from the wall clock by more than that, the offset follows.
 */
let clockOffset = performance.timeOrigin;
let clockCheckedAt = performance.now();
export function wallClockAt(perfNow: number): number {
  if (perfNow - clockCheckedAt > 60_000) {
    clockCheckedAt = performance.now();
    const floor = Date.now() - clockCheckedAt; // the true offset is in [floor, floor + 1)
    if (clockOffset < floor || clockOffset >= floor + 1) clockOffset = floor + 0.5;
  }
  return perfNow + clockOffset;
}
