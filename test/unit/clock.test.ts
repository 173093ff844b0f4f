/** The attempts' clock: sub-millisecond, and the wall clock's time to within its millisecond. */
import { performance } from 'node:perf_hooks';
import { wallClockAt } from '../../services/worker/clock';

it('reads the wall clock: never before Date.now(), never a millisecond past it', () => {
  // Date.now() truncates: the true time is in [Date.now(), Date.now() + 1), give or take the
  // clocks' own rounding (50 µs allowed). A clock anchored on a truncated Date.now() reads up to
  // a millisecond early, for a minute at a time.
  for (let i = 0; i < 2000; i++) {
    const before = Date.now();
    const t = wallClockAt(performance.now());
    const after = Date.now();
    expect(t).toBeGreaterThanOrEqual(before - 0.05);
    expect(t).toBeLessThan(after + 1.05);
  }
});

it('is monotonic and sub-millisecond', () => {
  const a = wallClockAt(performance.now());
  const b = wallClockAt(performance.now());
  expect(b).toBeGreaterThanOrEqual(a);
  expect(b - a).toBeLessThan(1);
  expect(Number.isInteger(a) && Number.isInteger(b)).toBe(false);
});
