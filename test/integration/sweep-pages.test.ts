/**
 * The sweep's repair against a real Redis, when the counts disagree: it reads the held ids in pages
 * of a bounded size (each script call's commands counted through MONITOR), and tasks that move
 * between its pages (leased, handed back, sent to a retry) are neither forgotten nor held twice
 * once the forgotten ones are queued again: only the tasks really held nowhere are forgotten.
 */
import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import Redis from 'ioredis';
import { splitAddr } from '../../services/core/config/parsers';
import { createRedis } from '../../services/core/db/redis';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
const PAGE = 20;
let redis: Redis;
let other: Redis;
let prefix: string;

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'sweep-pages-test', offlineQueue: true });
  other = createRedis({ addr: testRedisAddr(), name: 'sweep-pages-other', offlineQueue: true });
});
beforeEach(() => {
  prefix = uniqueRedisPrefix('sweep');
});
afterEach(async () => {
  jest.restoreAllMocks();
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
});
afterAll(async () => {
  await Promise.all([redis.quit(), other.quit()]);
});

/**
 * MONITOR on a socket of its own, each line as `monitor` (args, source: a client's address or
 * `lua`). Not ioredis's monitor(): lines of other test files' traffic arriving with its OK made it
 * fail ("Command queue state error").
 */
async function monitor(): Promise<EventEmitter & { disconnect(): void }> {
  const { host, port } = splitAddr(testRedisAddr());
  const socket = connect({ host, port });
  const out = Object.assign(new EventEmitter(), { disconnect: () => socket.destroy() });
  let buffered = '';
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (line === '+OK') ready();
      const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
      if (m) out.emit('monitor', [...m[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => a[1]!), m[1]!);
    }
  });
  socket.write('MONITOR\r\n');
  await started;
  return out;
}

function items(tenant: string, count: number): EnqueueItem[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${tenant}-${i}`, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 }));
}

/** A queue with its own connection: the sweep's calls are told apart from the test's by client address. */
async function sweepingQueue(): Promise<{ q: RedisQueue; conn: Redis; addr: string }> {
  const conn = createRedis({ addr: testRedisAddr(), name: 'sweep-pages-sweeper', offlineQueue: true });
  const info = String(await conn.client('INFO'));
  return { q: new RedisQueue(conn, { prefix, strategy: 'weighted', weights: WEIGHTS, sweepPageSize: PAGE }), conn, addr: /addr=(\S+)/.exec(info)![1]! };
}

/** Known tasks whose ready-list entry is lost (held nowhere), and an entry of a task Redis does not know. */
async function breakInvariant(q: RedisQueue, lost: string[]): Promise<void> {
  for (const id of lost) expect(await other.lrem(q.keys.tenantQueue('default', id.split('-')[0]!), 0, id)).toBe(1);
  await other.rpush(q.keys.tenantQueue('default', 'a'), 'ghost');
}

it('reads the held ids a bounded page per script call, however many are held: 2,400 held, at most a page\'s worth of commands per call', async () => {
  const { q, conn, addr } = await sweepingQueue();
  try {
    await q.enqueue([...items('a', 1500), ...items('b', 900)]);
    expect(await q.lease({ max: 300, visibilityMs: 60_000 })).toHaveLength(300);
    const lost = ['a-1400', 'b-800', 'b-850'];
    await breakInvariant(q, lost);

    // Per script call of the sweeping connection, the commands it ran and their arguments.
    const watch = await monitor();
    const calls: { commands: number; args: number }[] = [];
    let started = false;
    let sawEnd!: () => void;
    const ended = new Promise<void>((resolve) => (sawEnd = resolve));
    watch.on('monitor', (args: string[], source: string) => {
      if (source === addr && /^echo$/i.test(args[0] ?? '')) sawEnd();
      if (source === addr && /^eval(sha)?$/i.test(args[0] ?? '')) {
        started = true;
        calls.push({ commands: 0, args: 0 });
      } else if (started && source === 'lua' && args.some((a) => a.includes(prefix))) {
        calls[calls.length - 1]!.commands++;
        calls[calls.length - 1]!.args += args.length;
      }
    });
    const s = await q.sweep(100);
    // Every command of the sweep has reached the monitor once this one has.
    await conn.echo('done');
    await ended;
    watch.disconnect();

    expect(s.forgotten.sort()).toEqual([...lost].sort());
    expect(s.orphans).toBe(1);
    expect(s.heldTwice).toBe(0);
    // Before: one call ran a command per held id (2,400 HEXISTS, over 7,000 arguments).
    expect(calls.length).toBeGreaterThan(2400 / PAGE);
    const widest = Math.max(...calls.map((c) => c.args));
    expect(widest).toBeLessThan(PAGE * 30);
    // All is well again: a count, one call.
    expect(await q.sweep(100)).toMatchObject({ known: 2397, held: 2397, orphans: 0, forgotten: [] });
  } finally {
    conn.disconnect();
  }
});

it('tasks leased, handed back and sent to a retry between the pages are neither forgotten nor held twice: only those held nowhere are', async () => {
  const { q, conn } = await sweepingQueue();
  const mover = new RedisQueue(other, { prefix, strategy: 'weighted', weights: WEIGHTS });
  try {
    const all = [...items('a', 300), ...items('b', 200)];
    await q.enqueue(all);
    const firstLeases = await q.lease({ max: 60, visibilityMs: 60_000 });
    const lost = ['a-250', 'b-150'];
    await breakInvariant(q, lost);

    // Between pages, another worker leases tasks (ready lists to processing), hands half of them back
    // and sends some leased since before to a retry: moves across structures read and not yet read.
    const run = (q as unknown as { run: Record<string, (keys: string[], args: (string | number)[]) => Promise<unknown>> }).run;
    const page = run['sweep-held']!;
    let pages = 0;
    jest.spyOn(run, 'sweep-held').mockImplementation(async (keys, args) => {
      const res = await page(keys, args);
      if (++pages % 5 === 0) {
        const leases = await mover.lease({ max: 20, visibilityMs: 60_000 });
        await mover.release(leases.slice(0, 10).map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority })));
        const old = firstLeases.splice(0, 3);
        await mover.retry(old.map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority, delayMs: 60_000 })));
      }
      return res;
    });
    const s = await q.sweep(100);
    expect(pages).toBeGreaterThan(10);
    expect(s.forgotten.sort()).toEqual([...lost].sort());
    // Tasks seen on two pages only moved: no id is held twice, so the next pass is a count again.
    expect(s.heldTwice).toBe(0);

    // The reconciler queues the forgotten ones again: then every task is held exactly once.
    jest.restoreAllMocks();
    expect(await q.enqueue(all.filter((it) => lost.includes(it.id)))).toEqual([true, true]);
    expect(await q.sweep(100)).toMatchObject({ known: 500, held: 500, orphans: 0, heldTwice: 0, forgotten: [] });
    const ready = [...(await q.readyIds('default'))];
    const leased = await redis.zrange(q.keys.processing, 0, -1);
    const retrying = await redis.zrange(q.keys.retries[2]!, 0, -1);
    const everywhere = [...ready, ...leased, ...retrying];
    expect(everywhere).toHaveLength(500);
    expect(new Set(everywhere)).toEqual(new Set(all.map((it) => it.id)));
  } finally {
    conn.disconnect();
  }
});

it('leases popping a ready list between pages make no entry of it a whole-list search: only the ids held nowhere are searched for', async () => {
  const { q, conn } = await sweepingQueue();
  const mover = new RedisQueue(other, { prefix, strategy: 'weighted', weights: WEIGHTS });
  try {
    await q.enqueue(items('a', 3000));
    const lost = ['a-1500', 'a-2900'];
    await breakInvariant(q, lost);
    // Workers drain the list from its head while the repair reads it.
    const run = (q as unknown as { run: Record<string, (keys: string[], args: (string | number)[]) => Promise<unknown>> }).run;
    const page = run['sweep-held']!;
    jest.spyOn(run, 'sweep-held').mockImplementation(async (keys, args) => {
      const res = await page(keys, args);
      await mover.lease({ max: 5, visibilityMs: 60_000 });
      return res;
    });
    const watch = await monitor();
    let searches = 0;
    watch.on('monitor', (args: string[], source: string) => {
      // LPOS key id, with no MAXLEN: a search of the whole list.
      if (source === 'lua' && /^lpos$/i.test(args[0] ?? '') && args.length === 3 && args[1]!.includes(prefix)) searches++;
    });
    const s = await q.sweep(100);
    await conn.echo('done');
    await redis.echo('flush');
    watch.disconnect();
    expect(s.forgotten.sort()).toEqual(lost);
    // A lost id is searched for in each of its tenant's ready lists and each dead-letter list.
    expect(searches).toBeLessThanOrEqual(8 * lost.length);
  } finally {
    conn.disconnect();
  }
});

it('overlapping sweeps: one process runs one repair at a time (a second call only counts), and another process\'s repair neither spoils its held ids nor costs it a page\'s worth of checks per id', async () => {
  const { q, conn, addr } = await sweepingQueue();
  const other2 = createRedis({ addr: testRedisAddr(), name: 'sweep-pages-other-process', offlineQueue: true });
  const otherProcess = new RedisQueue(other2, { prefix, strategy: 'weighted', weights: WEIGHTS, sweepPageSize: PAGE });
  try {
    // Over 512 known: meta is a hash table, which HSCAN reads a page at a time (a smaller hash, a
    // listpack, comes whole: at most hash-max-listpack-entries ids).
    await q.enqueue([...items('a', 400), ...items('b', 300)]);
    const lost = ['a-250', 'b-150'];
    await breakInvariant(q, lost);

    // The first repair stops after its held ids are read, until the test lets it go on.
    const run = (q as unknown as { run: Record<string, (keys: string[], args: (string | number)[]) => Promise<unknown>> }).run;
    const unheld = run['sweep-unheld']!;
    let paused!: () => void;
    const atUnheld = new Promise<void>((r) => (paused = r));
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    let first = true;
    jest.spyOn(run, 'sweep-unheld').mockImplementation(async (keys, args) => {
      if (first) {
        first = false;
        paused();
        await gate;
      }
      return unheld(keys, args);
    });
    const heldPages = jest.spyOn(run, 'sweep-held');
    const repair = q.sweep(100);
    await atUnheld;
    const pagesRead = heldPages.mock.calls.length;
    // Another pass of this process meanwhile: a count, no second repair.
    expect(await q.sweep(100)).toMatchObject({ known: 700, held: 698, orphans: 0, forgotten: [] });
    expect(heldPages.mock.calls.length).toBe(pagesRead);
    // Another process's reconciler repairs meanwhile (a pass that outlived its lock): it forgets the lost ones.
    expect((await otherProcess.sweep(100)).forgotten.sort()).toEqual([...lost].sort());

    // The first repair goes on, its calls watched: each stays a page's worth.
    const watch = await monitor();
    const calls: number[] = [];
    let sawEnd!: () => void;
    const ended = new Promise<void>((r) => (sawEnd = r));
    watch.on('monitor', (args: string[], source: string) => {
      if (source === addr && /^echo$/i.test(args[0] ?? '') && args[1] === 'done') sawEnd();
      else if (source === addr && /^eval(sha)?$/i.test(args[0] ?? '')) calls.push(0);
      else if (calls.length > 0 && source === 'lua' && args.some((a) => a.includes(prefix))) calls[calls.length - 1]! += args.length;
    });
    resume();
    const s = await repair;
    await conn.echo('done');
    await ended;
    watch.disconnect();
    // The other process forgot the lost ones first; this one finds nothing more, and checks no id twice over.
    expect(s.forgotten).toEqual([]);
    expect(Math.max(...calls)).toBeLessThan(PAGE * 30);
    expect(await q.sweep(100)).toMatchObject({ known: 698, held: 698, heldTwice: 0, forgotten: [] });
  } finally {
    conn.disconnect();
    other2.disconnect();
  }
});
