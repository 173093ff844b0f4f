/** How the keyspace is split (queue/partitions.ts) and how a lease round is shared (partitioned-queue.ts). */
import { partitionOf, partitionTags, slotOfTag } from '../../services/core/queue/partitions';
import { dueMarkBefore, leaseShares, mergeTenantStats, shareOut } from '../../services/core/queue/partitioned-queue';
import { formatDueMark, parseDueMark, tokenPartition } from '../../services/core/queue/redis-queue';

test('one partition keeps the single tag {prefix}: an upgrade changes no key name', () => {
  expect(partitionTags('ts', 1)).toEqual(['{ts}']);
  expect(partitionOf('anyone', 1)).toBe(0);
});

test.each([2, 3, 6, 12])('%i partitions: each tag lands in the middle half of its own slot range, so M masters holding equal ranges get N/M each', (n) => {
  const tags = partitionTags('ts', n);
  expect(new Set(tags).size).toBe(n);
  tags.forEach((tag, k) => {
    const width = 16384 / n;
    const slot = slotOfTag(tag);
    expect(slot).toBeGreaterThanOrEqual(k * width + width / 4);
    expect(slot).toBeLessThan(k * width + (3 * width) / 4);
    expect(tag).toMatch(new RegExp(`^\\{ts:k${k}\\.\\d+\\}$`));
  });
  // Stable across processes and versions: these names are in Redis.
  if (n === 3) expect(tags).toEqual(['{ts:k0.1}', '{ts:k1.0}', '{ts:k2.8}']);
});

test('a tenant always maps to the same partition (FNV-1a of its UTF-8 name), and tenants spread evenly', () => {
  expect(partitionOf('default', 6)).toBe(partitionOf('default', 6));
  expect([partitionOf('acme', 6), partitionOf('beta', 6), partitionOf('ünïcode', 6)]).toEqual([partitionOf('acme', 6), partitionOf('beta', 6), partitionOf('ünïcode', 6)]);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 6000; i++) counts[partitionOf(`tenant-${i}`, 6)]!++;
  for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  expect(() => partitionTags('ts', 0)).toThrow(/positive integer/);
});

test('a lease token names its partition; tokens of a single partition name none (0)', () => {
  expect(tokenPartition('worker-1.pod~AbC_-xyz12.4:17')).toBe(4);
  expect(tokenPartition('AbC_-xyz1a.0:1')).toBe(0);
  expect(tokenPartition('host.example~AbC_-xyz12:3')).toBe(0);
  expect(tokenPartition('no-colon')).toBe(0);
});

test('a lease round is shared by active tenants, at least one each, exactly max in all', () => {
  expect(shareOut(12, [1, 1, 1])).toEqual([4, 4, 4]);
  expect(shareOut(10, [1, 1, 1])).toEqual([4, 3, 3]);
  expect(shareOut(100, [90, 9, 1])).toEqual([89, 10, 1]);
  expect(shareOut(2, [5, 5, 5])).toEqual([1, 1, 0]);
  expect(shareOut(3, [5, 0, 5])).toEqual([1, 1, 1]);
  for (const [max, w] of [[7, [3, 1]], [1000, [1, 2, 3, 4, 5, 6]], [6, [100, 1, 1, 1, 1, 1]]] as [number, number[]][]) {
    const s = shareOut(max, w);
    expect(s.reduce((a, b) => a + b, 0)).toBe(max);
    for (const x of s) expect(x).toBeGreaterThanOrEqual(1);
  }
});

test('a lease round follows the priorities across partitions: strict serves the highest only, weighted 8:4:2:1, then tenants at that priority', () => {
  const W = { critical: 8, high: 4, default: 2, low: 1 };
  const counts = (critical: number, high: number, def: number, low: number) => ({ critical, high, default: def, low });
  const credit = () => ({ priority: [0, 0, 0, 0], partition: [0, 1, 2, 3].map(() => [0, 0, 0]) });
  const rounds = (active: Parameters<typeof leaseShares>[2], strict: boolean, max: number, n: number) => {
    const c = credit();
    const total = [0, 0, 0];
    for (let i = 0; i < n; i++) leaseShares(max, [0, 1, 2], active, W, strict, c).forEach((s, p) => (total[p]! += s));
    return total;
  };
  // Partition 0 has critical work, 1 low work, 2 is not known (one share each round, to find out).
  const active = [counts(1, 0, 0, 0), counts(0, 0, 0, 1), null];
  expect(rounds(active, true, 2, 90)).toEqual([90, 0, 90]);
  expect(rounds(active, false, 2, 90)).toEqual([80, 10, 90]);
  // Tenants at a priority share it (3 tenants against 1); partition 2 had nothing left (not known: one share).
  expect(rounds([counts(0, 0, 3, 0), counts(0, 0, 1, 0), counts(0, 0, 0, 0)], false, 2, 80)).toEqual([60, 20, 80]);
  // Nothing known: shared evenly, as before.
  expect(leaseShares(10, [0, 1, 2], [null, null, null], W, false, credit())).toEqual([4, 3, 3]);
});

test('tenant rows of all partitions merge into the busiest few and one row of the rest', () => {
  const rows = [
    { tenant: 'a', ready: 5, running: 0 },
    { tenant: 'b', ready: 1, running: 9 },
    { tenant: null, ready: 3, running: 1 },
    { tenant: 'c', ready: 2, running: 0 },
    { tenant: 'd', ready: 2, running: 0 },
  ];
  expect(mergeTenantStats(rows, 2)).toEqual([
    { tenant: 'b', ready: 1, running: 9 },
    { tenant: 'a', ready: 5, running: 0 },
    { tenant: null, ready: 7, running: 1 },
  ]);
  expect(mergeTenantStats(rows.slice(0, 2), 5)).toEqual([rows[1], rows[0]]);
});

test('the delayed loader\'s marks order by due time, then id; a mark without an id covers every id of its time', () => {
  const a = '0190a000-0000-7000-8000-000000000001';
  const b = '0190a000-0000-7000-8000-000000000002';
  expect(dueMarkBefore({ ms: 1, id: null }, { ms: 2, id: a })).toBe(true);
  expect(dueMarkBefore({ ms: 2, id: a }, { ms: 2, id: b })).toBe(true);
  expect(dueMarkBefore({ ms: 2, id: b }, { ms: 2, id: a })).toBe(false);
  expect(dueMarkBefore({ ms: 2, id: b }, { ms: 2, id: null })).toBe(true);
  expect(dueMarkBefore({ ms: 2, id: null }, { ms: 2, id: b })).toBe(false);
  expect(dueMarkBefore({ ms: 2, id: null }, { ms: 2, id: null })).toBe(false);
});

test('a mark with an id is written as a number to a worker that reads Number(v) (ms - 1, its fraction dropped), and read back exactly', () => {
  const ms = 1_796_637_301_933;
  for (const id of ['00000000-0000-0000-0000-000000000000', '0190a000-0000-7000-8000-000000000001', '2a468173-307b-4bcb-b413-c85940ef0feb', 'ffffffff-ffff-ffff-ffff-ffffffffffff']) {
    const v = formatDueMark({ ms, id });
    expect(new Date(Number(v)).getTime()).toBe(ms - 1);
    expect(parseDueMark(v)).toEqual({ ms, id });
  }
  expect(formatDueMark({ ms, id: null })).toBe(String(ms));
  expect(parseDueMark(String(ms))).toEqual({ ms, id: null });
  // The form this version wrote before, and a non-uuid id, are still read.
  expect(parseDueMark(`${ms}:2a468173-307b-4bcb-b413-c85940ef0feb`)).toEqual({ ms, id: '2a468173-307b-4bcb-b413-c85940ef0feb' });
  expect(parseDueMark(formatDueMark({ ms, id: 'task-1' }))).toEqual({ ms, id: 'task-1' });
});
