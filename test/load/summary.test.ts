/** The load generator's arithmetic: percentiles, the in-flight sweep, the task plan, the table and the report. */
import { parseFlags } from '../../services/load/flags';
import { apportion, TaskPlan } from '../../services/load/plan';
import { markdownTable, renderText, TABLE_COLUMNS, tableCells } from '../../services/load/render';
import { chooseBin, niceTicks, renderHtml, timeSeries } from '../../services/load/report';
import { buildResult } from '../../services/load/result';
import { newStats } from '../../services/load/client';
import { formatMs, maxConcurrent, percentile, spread } from '../../services/load/stats';
import { computeSummary, RunFact, TaskFact, timelineOf } from '../../services/load/summary';

describe('percentile (nearest rank)', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  it.each([
    [50, 50],
    [95, 95],
    [99, 99],
    [100, 100],
    [0, 1],
    [0.5, 1],
    [99.5, 100],
  ])('p%d of 1..100 = %d', (p, v) => expect(percentile(xs, p)).toBe(v));

  it('small samples take the value at rank ceil(p·n)', () => {
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 51)).toBe(30);
    expect(percentile([10, 20, 30, 40], 95)).toBe(40);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNull();
  });

  it('spread sorts numerically (not as strings) and reports count, max and mean', () => {
    expect(spread([100, 9, 20, 3])).toEqual({ count: 4, p50: 9, p95: 100, p99: 100, max: 100, mean: 33 });
    expect(spread([])).toEqual({ count: 0, p50: null, p95: null, p99: null, max: null, mean: null });
  });
});

describe('maxConcurrent (sweep line over [start, end))', () => {
  const iv = (start: number, end: number | null) => ({ start, end });
  it('counts overlaps', () => {
    expect(maxConcurrent([])).toBe(0);
    expect(maxConcurrent([iv(0, 10)])).toBe(1);
    expect(maxConcurrent([iv(0, 10), iv(5, 15), iv(8, 9)])).toBe(3);
    expect(maxConcurrent([iv(0, 10), iv(20, 30), iv(25, 26)])).toBe(2);
  });
  it('back-to-back intervals do not overlap', () => {
    expect(maxConcurrent([iv(0, 10), iv(10, 20), iv(20, 30)])).toBe(1);
  });
  it('zero-length intervals count once, and with what is open at that instant', () => {
    expect(maxConcurrent([iv(5, 5)])).toBe(1);
    expect(maxConcurrent([iv(5, 5), iv(5, 5)])).toBe(2);
    expect(maxConcurrent([iv(0, 10), iv(5, 5)])).toBe(2);
    expect(maxConcurrent([iv(0, 5), iv(5, 5)])).toBe(1);
  });
  it('open intervals (end null) stay open until openUntil', () => {
    expect(maxConcurrent([iv(0, null), iv(100, 110)], 50)).toBe(1);
    expect(maxConcurrent([iv(0, null), iv(100, 110)], 200)).toBe(2);
    expect(maxConcurrent([iv(0, null), iv(100, 110)])).toBe(2);
  });
  it('an end before its start counts as an instant', () => {
    expect(maxConcurrent([iv(10, 5), iv(0, 20)])).toBe(2);
  });
  it('with a cap, a group (worker) counts at most cap at once; groups add up', () => {
    const w = (group: string, start: number, end: number) => ({ group, start, end });
    // Five sub-millisecond runs of one 2-slot worker, all shown in millisecond 5.
    const a = [w('a', 5, 5), w('a', 5, 5), w('a', 5, 5), w('a', 5, 5), w('a', 5, 5)];
    expect(maxConcurrent(a)).toBe(5);
    expect(maxConcurrent(a, Infinity, 2)).toBe(2);
    expect(maxConcurrent([...a, w('b', 0, 10), w('b', 4, 6), w('b', 5, 7)], Infinity, 2)).toBe(4);
    expect(maxConcurrent([w('a', 0, 10), w('b', 0, 10), w('a', 10, 20)], Infinity, 2)).toBe(2);
  });
});

describe('the task plan', () => {
  const opts = (argv: string[]) => parseFlags(argv, {});

  it('apportion splits by largest remainders', () => {
    expect(apportion(['a', 'b', 'c'], { a: 80, b: 10, c: 10 }, 100)).toEqual({ a: 80, b: 10, c: 10 });
    expect(apportion(['a', 'b', 'c'], { a: 80, b: 15, c: 5 }, 7)).toEqual({ a: 6, b: 1, c: 0 });
    expect(apportion(['a', 'b'], { a: 50, b: 50 }, 3)).toEqual({ a: 2, b: 1 });
  });

  it('every 100 tasks match the mix exactly; kinds and priorities are mixed, deterministically per seed', () => {
    const o = opts(['-n', '300', '-pct-flaky', '10', '-pct-fail', '5', '-pct-sleep', '5', '-sleep-ms', '20']);
    const plan = new TaskPlan(o);
    const tasks = Array.from({ length: 300 }, (_, i) => plan.at(i));
    const count = (f: (t: (typeof tasks)[number]) => boolean) => tasks.filter(f).length;
    expect(count((t) => t.kind === 'noop')).toBe(240);
    expect(count((t) => t.kind === 'flaky')).toBe(30);
    expect(count((t) => t.kind === 'fail')).toBe(15);
    expect(count((t) => t.kind === 'sleep')).toBe(15);
    expect(count((t) => t.priority === 'critical')).toBe(30);
    expect(count((t) => t.priority === 'default')).toBe(150);
    // Not sorted: the first ten are not all the same kind.
    expect(new Set(tasks.slice(0, 20).map((t) => t.kind)).size).toBeGreaterThan(1);
    // Fail tasks are not all of one priority.
    expect(new Set(tasks.filter((t) => t.kind === 'fail').map((t) => t.priority)).size).toBeGreaterThan(1);
    // Same seed → same sequence; another seed → another order.
    const again = new TaskPlan(o);
    expect(Array.from({ length: 300 }, (_, i) => again.at(i))).toEqual(tasks);
    const other = new TaskPlan({ ...o, seed: 2 });
    expect(Array.from({ length: 300 }, (_, i) => other.at(i).kind)).not.toEqual(tasks.map((t) => t.kind));
  });

  it('the last partial block is apportioned too', () => {
    const plan = new TaskPlan(opts(['-n', '150', '-pct-fail', '10']));
    const kinds = Array.from({ length: 150 }, (_, i) => plan.at(i).kind);
    expect(kinds.filter((k) => k === 'fail')).toHaveLength(15);
  });

  it('bodies follow the Go tool', () => {
    const o = opts(['-sleep-ms', '20', '-flaky-attempts', '3']);
    const plan = new TaskPlan({ ...o, taskMix: { noop: 25, flaky: 25, fail: 25, sleep: 25 } });
    const bodies = new Map(Array.from({ length: 100 }, (_, i) => plan.at(i)).map((t) => [t.kind, t.body]));
    expect(bodies.get('noop')).toEqual({ type: 'noop', priority: expect.any(String) });
    expect(bodies.get('flaky')).toEqual({ type: 'flaky', priority: expect.any(String), payload: { fail_attempts: 3 } });
    expect(bodies.get('fail')).toEqual({ type: 'always_fail', priority: expect.any(String) });
    expect(bodies.get('sleep')).toEqual({ type: 'sleeper', priority: expect.any(String), payload: { sleep_ms: 20 } });
  });
});

// Four tasks: a noop (one run), a flaky one (failed, then succeeded), an always_fail with
// max_retries 1 (two failed runs, dead) and a noop still queued; timestamps in ms.
const tasks: TaskFact[] = [
  { id: 'a', type: 'noop', status: 'succeeded', attempts: 1, created: 1000, finished: 1020 },
  { id: 'b', type: 'flaky', status: 'succeeded', attempts: 2, created: 1010, finished: 1200 },
  { id: 'c', type: 'always_fail', status: 'dead', attempts: 2, created: 1020, finished: 1500 },
  { id: 'd', type: 'noop', status: 'queued', attempts: 0, created: 1030, finished: null },
];
const runs: RunFact[] = [
  { taskId: 'a', attempt: 1, workerId: 'w1', started: 1010, finished: 1020, outcome: 'succeeded', durationMs: 10 },
  { taskId: 'b', attempt: 1, workerId: 'w1', started: 1015, finished: 1030, outcome: 'failed', durationMs: 15 },
  { taskId: 'b', attempt: 2, workerId: 'w2', started: 1100, finished: 1200, outcome: 'succeeded', durationMs: 100 },
  { taskId: 'c', attempt: 1, workerId: 'w2', started: 1040, finished: 1060, outcome: 'failed', durationMs: 20 },
  { taskId: 'c', attempt: 2, workerId: 'w1', started: 1400, finished: 1500, outcome: 'failed', durationMs: 100 },
];

describe('computeSummary', () => {
  const s = computeSummary(tasks, runs, { accepted: 4, slots: 12, nowMs: 2000 });

  it('counts tasks, workers, in-flight, drain time and throughput', () => {
    expect(s).toMatchObject({ burst: 4, found: 4, final: 3, succeeded: 2, dead: 1, unfinished: 1, workers: 2, slots: 12, inFlight: 2, runs: 5 });
    expect(s.byStatus).toEqual({ succeeded: 2, dead: 1, queued: 1 });
    expect(s.byType.always_fail).toEqual({ tasks: 1, succeeded: 0, dead: 1, runs: 2 });
    expect(s.drainTimeMs).toBe(500); // 1500 (last finished) − 1000 (first created)
    expect(s.throughputPerS).toBe(6); // 3 final / 0.5 s
    expect(s.failPct).toBeCloseTo(100 / 3);
  });

  it('retries are failed runs followed by another attempt; reaped are expired runs', () => {
    expect(s.retries).toBe(2); // b#1, c#1 (c#2 was the last)
    expect(s.extraAttempts).toBe(2);
    expect(s.reaped).toBe(0);
    const reaped = computeSummary(tasks, [...runs.slice(0, 2), { ...runs[2]!, attempt: 3 }, { taskId: 'b', attempt: 2, workerId: 'w3', started: 1031, finished: 1090, outcome: 'expired', durationMs: null }], {
      accepted: 4,
      slots: null,
      nowMs: 2000,
    });
    expect(reaped.reaped).toBe(1);
    expect(reaped.retries).toBe(1);
    expect(reaped.runOutcomes).toEqual({ succeeded: 2, failed: 1, expired: 1 });
  });

  it('run times come from duration_ms; waits from the first attempt start − created', () => {
    expect(s.runMs).toMatchObject({ count: 5, p50: 20, p95: 100, max: 100 });
    expect(s.waitMs).toMatchObject({ count: 3, p50: 10, max: 20 }); // a 10, b 5, c 20
  });

  it('nothing final yet: no drain time, throughput or fail %', () => {
    const none = computeSummary([tasks[3]!], [], { accepted: 1, slots: null, nowMs: 0 });
    expect(none).toMatchObject({ final: 0, drainTimeMs: null, throughputPerS: null, failPct: null, inFlight: 0 });
  });

  it('the timeline has created, first-started and finished times', () => {
    const t = timelineOf(tasks, runs);
    expect(t.created).toEqual([1000, 1010, 1020, 1030]);
    expect(t.started.sort()).toEqual([1010, 1015, 1040]);
    expect(t.finished).toEqual([1020, 1200, 1500]);
  });
});

describe('rendering', () => {
  const opts = parseFlags(['-n', '4', '-slots', '12'], {});
  const stats = newStats('testrun');
  Object.assign(stats, { tasksSent: 4, requests: 4, accepted: 4, created: 4, httpStatus: { '201': 4 }, latencies: [5, 6, 7, 8], ids: ['a', 'b', 'c', 'd'], endedAt: stats.startedAt + 1000 });
  const summary = computeSummary(tasks, runs, { accepted: 4, slots: 12, nowMs: 2000 });
  const result = buildResult({ opts, stats, summary, resultsError: null, interrupted: false, waitTimedOut: false, endedAt: stats.startedAt + 1000 });

  it('formats durations', () => {
    expect(formatMs(0.344)).toBe('0.34 ms');
    expect(formatMs(12.3)).toBe('12 ms');
    expect(formatMs(1520)).toBe('1.52 s');
    expect(formatMs(95_000)).toBe('1m 35s');
    expect(formatMs(3_725_000)).toBe('1h 02m 05s');
    expect(formatMs(null)).toBe('–');
  });

  it('the table has the Go columns, one row, aligned', () => {
    expect(tableCells(result)).toEqual(['4', '2 × 12', '2', '500 ms', '6.0 tasks/s', '100 ms', '20 ms', '33.3%', '2', '0']);
    const table = markdownTable(TABLE_COLUMNS, [tableCells(result)]);
    const lines = table.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('| Burst | Workers × Slots | In-flight | Drain Time | Throughput  | p95 Run | p95 Wait | Fail % | Retries | Reaped |');
    expect(lines[1]).toBe('| ----: | --------------- | --------: | ---------: | ----------: | ------: | -------: | -----: | ------: | -----: |');
    expect(lines[2]).toBe('|     4 | 2 × 12          |         2 |     500 ms | 6.0 tasks/s |  100 ms |    20 ms |  33.3% |       2 |      0 |');
    expect(new Set(lines.map((l) => [...l].length)).size).toBe(1);
  });

  it('the text summary says what is not final', () => {
    const text = renderText(result);
    expect(text).toContain('4 accepted: 3 final (2 succeeded, 1 dead), 1 not final');
    expect(text).toContain('not everything is final: 1 of 4 tasks');
    expect(text).toContain('HTTP      201 ×4');
    expect(result.complete).toBe(false);
  });

  it('without the tasks read back the table shows what the client knows', () => {
    const r = buildResult({ opts, stats, summary: null, resultsError: 'http://api: connection refused', interrupted: true, waitTimedOut: false, endedAt: stats.startedAt + 1000 });
    expect(tableCells(r)).toEqual(['4', '?', '–', '–', '–', '–', '–', '–', '–', '–']);
    expect(r.notes.join('\n')).toMatch(/interrupted.*\n.*the tasks could not be read back through the API \(http:\/\/api: connection refused\)/);
    expect(r.table).toBeNull();
  });

  it('time series bins and ticks', () => {
    expect(chooseBin(1000)).toBe(20);
    expect(chooseBin(60_000)).toBe(1000);
    expect(niceTicks(9)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0)).toEqual([0, 1]);
    const ts = timeSeries(timelineOf(tasks, runs))!;
    expect(ts.binMs).toBe(10);
    // Depth at the end: 4 accepted − 3 started.
    expect(ts.waiting.points[ts.waiting.points.length - 1]![1]).toBe(1);
    // Accepted per second integrates back to 4 tasks.
    expect(ts.accepted.points.reduce((sum, [, perS]) => sum + (perS * ts.binMs) / 1000, 0)).toBeCloseTo(4);
  });

  it('the HTML report is self-contained, with SVG charts', () => {
    const html = renderHtml(result, timelineOf(tasks, runs));
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain('accepted/s');
    expect(html).toContain('finished/s');
    expect(html).toContain('waiting (accepted − started)');
    expect(html).not.toMatch(/<script|<link|src=|href=/i);
  });
});
