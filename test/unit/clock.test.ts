/** The attempts' clock: sub-millisecond, and the wall clock's time to within its millisecond. */
import { performance } from 'node:perf_hooks';
import { wallClockAt } from '../../services/worker/clock';

it('reads the wall clock: never before Date.now(), never a millisecond past it', () => {
  // Date.now() truncates: the true time is in [Date.now(), Date.now() + 1). The monotonic clock
  // may drift from the wall clock between the minute's checks (NTP slews it by a few ppm), so
  // 250 µs is allowed either side; a clock anchored on a truncated Date.now() reads up to a
  // millisecond early, for a minute at a time, and still fails.
  for (let i = 0; i < 2000; i++) {
    const before = Date.now();
    const t = wallClockAt(performance.now());
    const after = Date.now();
    expect(t).toBeGreaterThanOrEqual(before - 0.25);
    expect(t).toBeLessThan(after + 1.25);
  }
});

it('is monotonic and sub-millisecond', () => {
  const a = wallClockAt(performance.now());
  const b = wallClockAt(performance.now());
  expect(b).toBeGreaterThanOrEqual(a);
  expect(b - a).toBeLessThan(1);
  expect(Number.isInteger(a) && Number.isInteger(b)).toBe(false);
});

it('follows a step of the wall clock at once (a VM paused or moved), not a minute later', () => {
  const real = Date.now;
  try {
    for (const step of [15_000, -15_000]) {
      const shifted = (): number => real() + step;
      Date.now = shifted;
      const before = shifted();
      const t = wallClockAt(performance.now());
      const after = shifted();
      expect(t).toBeGreaterThanOrEqual(before - 0.25);
      expect(t).toBeLessThan(after + 1.25);
      Date.now = real;
      expect(Math.abs(wallClockAt(performance.now()) - real())).toBeLessThan(2);
    }
  } finally {
    Date.now = real;
  }
});
