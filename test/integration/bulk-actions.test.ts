/**
 * Bulk cancel and retry (the dead-letter redrive) against real Postgres, Redis, an API and a
 * worker: racing redrives change each task once, filters and limits, dry runs, resuming with
 * has_more, a scan bounded by BULK_SCAN_ROWS and resumed with the cursor, tenant scope, and the 400s.
 */
import { submitTasks } from '../../services/core/tasks/submit';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { runBulk } from '../../services/api/operator/bulk-routes';
import { markRunning } from '../../services/core/tasks/attempt-store';
import type { Worker } from '../../services/worker/worker';
import { runsOf, silentLog, startApi, waitFor } from '../support/stack';
import { resettableStackWithApi } from '../support/stack-reset';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';
import { expectEqual } from '../support/expect-equal';
import { isDeepStrictEqual } from 'node:util';

const fx = resettableStackWithApi({ RETRY_BASE_MS: 10, RETRY_MAX_MS: 20, RETRY_JITTER_MS: 5, RETRY_SCAN_INTERVAL_MS: 20, REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
let worker: Worker | null = null;

async function submitMany(n: number, type: string, payload: unknown = {}, opts: { maxRetries?: number; tenant?: string; priority?: 'default' | 'low' } = {}): Promise<string[]> {
  const res = await submitTasks(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    Array.from({ length: n }, () => ({ type, priority: opts.priority ?? 'default', payload, maxRetries: opts.maxRetries ?? 0, tenant: opts.tenant ?? 'default', idempotencyKey: null, canonical: '' })),
  );
  return res.map((r) => r.task.id);
}

async function post(path: string, body: unknown, url = fx.api.url): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function countByStatus(tenant = 'default'): Promise<Record<string, number>> {
  const { rows } = await fx.stack.pool.query<{ status: string; n: number }>('SELECT status::text AS status, count(*)::int AS n FROM tasks WHERE tenant = $1 GROUP BY status', [tenant]);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

const allDead = (n: number, tenant = 'default') => async () => ((await countByStatus(tenant)).dead ?? 0) === n;

it('two racing redrives of 300 dead tasks: each task runs exactly once more', async () => {
  ({ worker } = fx.startWorker());
  // flaky with one planned failure and no retries: dead after attempt 1, and a redrive succeeds.
  const ids = await submitMany(300, 'flaky', { fail_attempts: 1 });
  await waitFor(allDead(300), 30000, '300 dead tasks');
  await worker!.stop(0);
  worker = null;
  // Batches of 50: each call commits six, so the two interleave as larger redrives do.
  const api = await startApi({ ...fx.stack, cfg: { ...fx.stack.cfg, BULK_BATCH: 50 } });
  let a: Awaited<ReturnType<typeof post>>, b: typeof a;
  try {
    [a, b] = await Promise.all([post('/tasks/retry', { filter: { status: 'dead' } }, api.url), post('/tasks/retry', { filter: { status: ['dead'] } }, api.url)]);
  } finally {
    await api.server.stop();
  }
  expect(a.status).toBe(200);
  expect(b.status).toBe(200);
  expect((a.body.changed as number) + (b.body.changed as number)).toBe(300);
  expect(a.body.has_more).toBe(false);
  expect(await countByStatus()).toEqual({ queued: 300 });
  ({ worker } = fx.startWorker());
  await waitFor(async () => (await countByStatus()).succeeded === 300, 30000, 'every redriven task to succeed');
  const { rows } = await fx.stack.pool.query<{ task_id: string; outcomes: string[] }>(
    `SELECT task_id, array_agg(outcome ORDER BY attempt) AS outcomes FROM task_runs WHERE task_id = ANY($1::uuid[]) GROUP BY task_id`,
    [ids],
  );
  expect(rows).toHaveLength(300);
  expectEqual(rows.filter((r) => !isDeepStrictEqual(r.outcomes, ['failed', 'succeeded'])), []);
});

it('filters, limits, dry runs and has_more: a redrive can be sized first and carried on', async () => {
  ({ worker } = fx.startWorker());
  await submitMany(30, 'always_fail');
  await submitMany(20, 'always_fail', {}, { priority: 'low' });
  await submitMany(5, 'always_fail', {}, { tenant: 'other-team' });
  await waitFor(allDead(50), 20000, 'dead tasks');
  await waitFor(allDead(5, 'other-team'), 20000, 'the other tenant’s dead tasks');
  await worker!.stop(0);
  worker = null;
  const dry = await post('/tasks/retry', { filter: { status: 'dead', priority: 'low' }, dry_run: true });
  expect(dry.body).toEqual({ matched: 20, changed: 0, has_more: false, next_cursor: null, dry_run: true });
  expect((await countByStatus()).dead).toBe(50);
  const first = await post('/tasks/retry', { filter: { priority: 'default' }, limit: 12 });
  expect(first.body).toEqual({ matched: 12, changed: 12, has_more: true, next_cursor: expect.any(String), dry_run: false });
  // Without the cursor a call starts from the newest again: the changed ones no longer match.
  const rest = await post('/tasks/retry', { filter: { priority: 'default' }, limit: 100 });
  expect(rest.body).toEqual({ matched: 18, changed: 18, has_more: false, next_cursor: null, dry_run: false });
  expect(await countByStatus()).toEqual({ queued: 30, dead: 20 });
  // The other tenant's tasks were never touched.
  expect(await countByStatus('other-team')).toEqual({ dead: 5 });
  // The newest first: a time window selects by created_at.
  const future = await post('/tasks/retry', { filter: { created_after: new Date(Date.now() + 60_000).toISOString() } });
  expect(future.body).toMatchObject({ matched: 0, changed: 0 });
});

it('bulk cancel of waiting tasks: cancelled at once, gone from Redis, and never run', async () => {
  const ids = await submitMany(300, 'noop');
  await submitMany(10, 'other-type');
  const res = await post('/tasks/cancel', { filter: { type: 'noop' } });
  expect(res.body).toEqual({ matched: 300, changed: 300, has_more: false, next_cursor: null, dry_run: false });
  expect(await countByStatus()).toEqual({ cancelled: 300, queued: 10 });
  const listed = await fx.stack.inspect.lrange(fx.stack.queue.keys.tenantQueue('default', 'default'), 0, -1);
  expect(listed.filter((id) => ids.includes(id))).toEqual([]);
  expect(listed).toHaveLength(10);
  ({ worker } = fx.startWorker({ handlers: { 'other-type': async () => undefined } }));
  await waitFor(async () => (await countByStatus()).succeeded === 10, 10000, 'the others to run');
  for (const id of ids.slice(0, 20)) expect(await runsOf(fx.stack.pool, id)).toEqual([]);
  // Cancelling again matches nothing: every one is final.
  expect((await post('/tasks/cancel', { filter: { type: 'noop' } })).body).toMatchObject({ matched: 0, changed: 0 });
});

it('bad bulk bodies are 400s naming the field', async () => {
  const cases: [string, unknown, string][] = [
    ['/tasks/retry', { filter: { status: 'queued' } }, 'filter.status'],
    ['/tasks/cancel', { filter: { status: 'dead' } }, 'filter.status'],
    ['/tasks/retry', { filter: { colour: 'red' } }, 'filter.colour'],
    ['/tasks/retry', { filter: { priority: 'urgent' } }, 'filter.priority'],
    ['/tasks/retry', { filter: { created_after: 'yesterday' } }, 'filter.created_after'],
    ['/tasks/retry', { filter: 'dead' }, 'filter'],
    ['/tasks/retry', { limit: 0 }, 'limit'],
    ['/tasks/retry', { limit: 10_001 }, 'limit'],
    ['/tasks/retry', { dry_run: 'yes' }, 'dry_run'],
    ['/tasks/cancel', { everything: true }, 'everything'],
    ['/tasks/cancel', [1, 2], '(body)'],
    ['/tasks/retry', { cursor: 'abc' }, 'cursor'],
    ['/tasks/retry', { cursor: 'WyIyMDI2IiwieCJd' }, 'cursor'],
    ['/tasks/retry', { cursor: Buffer.from('["2026-02-30 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url'), dry_run: true }, 'cursor'],
    ['/tasks/cancel', { filter: { created_before: '9999-12-31T23:59:59-23:59' }, dry_run: true }, 'filter.created_before'],
    ['/tasks/cancel', { cursor: 17 }, 'cursor'],
    ['/tasks/cancel', { cursor: null }, 'cursor'],
  ];
  for (const [path, body, field] of cases) {
    const res = await post(path, body);
    expect([path, res.status]).toEqual([path, 400]);
    expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
  }
  const res = await fetch(`${fx.api.url}/tasks/retry`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ filter: { status: 'dead' }, cursor: 'not-a-cursor' }) });
  expect(res.status).toBe(400);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(await res.json()).toMatchObject({ status: 400, errors: [{ field: 'cursor', message: expect.stringMatching(/next_cursor/) }] });
  const wrongMethod = await fetch(`${fx.api.url}/tasks/retry`);
  expect(wrongMethod.status).toBe(405);
});

describe('a filter that matches few tasks: each call reads at most BULK_SCAN_ROWS rows, and the cursor carries on', () => {
  // Six rounds, oldest first, of 2 "rare" tasks then 50 "common" ones, all cancelled: 312 rows in the
  // dead-and-cancelled index, newest first 50 common, 2 rare, 50 common, 2 rare, …
  const SCAN = 100;
  let small: Awaited<ReturnType<typeof startApi>>;
  let rare: string[];
  beforeEach(async () => {
    rare = [];
    for (let round = 0; round < 6; round++) {
      rare.push(...(await submitMany(2, 'rare')));
      await submitMany(50, 'common');
    }
    expect((await post('/tasks/cancel', {})).body).toMatchObject({ matched: 312, changed: 312, has_more: false });
    small = await startApi({ ...fx.stack, cfg: { ...fx.stack.cfg, BULK_SCAN_ROWS: SCAN } });
  });
  afterEach(async () => {
    await small.server.stop();
  });
  const postSmall = async (path: string, body: unknown, url = small.url) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { matched: number; changed: number; has_more: boolean; next_cursor: string | null; dry_run: boolean } };
  };
  const statusOf = async (ids: string[]) => (await fx.stack.pool.query<{ id: string; status: string }>('SELECT id, status::text AS status FROM tasks WHERE id = ANY($1::uuid[])', [ids])).rows;

  it('stops after BULK_SCAN_ROWS rows with has_more and a next_cursor, even having matched nothing', async () => {
    // The first 100 rows hold the newest round's 2 rare tasks, well short of the limit.
    const first = await postSmall('/tasks/retry', { filter: { type: 'rare' }, limit: 100 });
    expect(first).toEqual({ status: 200, body: { matched: 2, changed: 2, has_more: true, next_cursor: expect.any(String), dry_run: false } });
    const none = await postSmall('/tasks/retry', { filter: { type: 'nothing-like-it' } });
    expect(none.body).toEqual({ matched: 0, changed: 0, has_more: true, next_cursor: expect.any(String), dry_run: false });
    expect((await statusOf(rare)).filter((t) => t.status === 'queued')).toHaveLength(2);
  });

  it('a dry run follows the cursor too: every match counted once, in calls of at most 100 rows, nothing changed', async () => {
    const countAll = async (url: string) => {
      const counts: number[] = [];
      let cursor: string | undefined;
      for (let calls = 0; calls < 20; calls++) {
        const r = await postSmall('/tasks/retry', { filter: { type: 'rare', status: 'cancelled' }, dry_run: true, cursor }, url);
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ changed: 0, dry_run: true });
        expect(r.body.has_more).toBe(r.body.next_cursor !== null);
        counts.push(r.body.matched);
        if (!r.body.has_more) break;
        cursor = r.body.next_cursor!;
      }
      return counts;
    };
    // 312 rows, 100 a call: rows 1-100 hold 2 rare tasks, 101-200 4, 201-300 4 and 301-312 the last 2.
    expect(await countAll(small.url)).toEqual([2, 4, 4, 2]);
    // The same when a call reads in pages of 2 matches: the pages share the call's 100 rows.
    const paged = await startApi({ ...fx.stack, cfg: { ...fx.stack.cfg, BULK_SCAN_ROWS: SCAN, BULK_BATCH: 2 } });
    try {
      expect(await countAll(paged.url)).toEqual([2, 4, 4, 2]);
    } finally {
      await paged.server.stop();
    }
    expect((await statusOf(rare)).every((t) => t.status === 'cancelled')).toBe(true);
  });

  it('looping while has_more with the cursor retries every match exactly once, though each dies again at once and new ones arrive', async () => {
    const visited: string[] = [];
    const added: string[] = [];
    let cursor: string | undefined;
    let calls = 0;
    for (; calls < 50; calls++) {
      // A limit of 3: some calls stop at the limit, others at the scan bound.
      const r = await postSmall('/tasks/retry', { filter: { type: 'rare' }, limit: 3, cursor });
      expect(r.status).toBe(200);
      const queued = (await fx.stack.pool.query<{ id: string }>("SELECT id FROM tasks WHERE type = 'rare' AND status = 'queued'")).rows.map((t) => t.id);
      expect(queued).toHaveLength(r.body.changed);
      visited.push(...queued);
      // What this call queued dies again at once (back among the matches, and into the index the
      // walk reads), and new matching tasks arrive: the walk must see none of them.
      expect((await post('/tasks/cancel', { filter: { type: 'rare' } })).body).toMatchObject({ changed: queued.length });
      const fresh = await submitMany(1, 'rare');
      added.push(...fresh);
      expect((await post('/tasks/cancel', { filter: { type: 'rare' } })).body).toMatchObject({ changed: 1 });
      if (!r.body.has_more) {
        expect(r.body.next_cursor).toBeNull();
        break;
      }
      cursor = r.body.next_cursor!;
    }
    expect(calls).toBeLessThan(50);
    expect([...visited].sort()).toEqual([...rare].sort());
    expect(new Set(visited).size).toBe(rare.length);
    expect(visited.some((id) => added.includes(id))).toBe(false);
    // Without the cursor the next call starts from the newest again: the newcomers.
    expect((await postSmall('/tasks/retry', { filter: { type: 'rare' }, dry_run: true })).body.matched).toBeGreaterThanOrEqual(added.length);
  });
});

it('a bulk cancel that fails part way counts in tasks_cancelled_total the pages it committed', async () => {
  await submitMany(5, 'noop');
  // The scan of the third page fails, as a Postgres blip would: two pages of two were cancelled.
  let scans = 0;
  const pool = new Proxy(fx.stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? (config: { text?: string }, values?: unknown[]) => {
            if (typeof config === 'object' && config.text?.includes('row_number() OVER') && ++scans === 3) return Promise.reject(Object.assign(new Error('connection terminated'), { code: '57P01' }));
            return target.query(config as never, values as never);
          }
        : Reflect.get(target, prop, receiver),
  });
  const registry = createRegistry('api');
  const metrics = apiMetrics(registry);
  const deps = { pool, queue: fx.stack.queue, log: silentLog, batch: 2, scanRows: 1000, metrics, underLimits: (() => Promise.reject(new Error('not admitted here'))) as never };
  // The answer says so, and where to carry on.
  await expect(runBulk(deps, 'default', { action: 'cancel', filter: { statuses: ['queued'] }, limit: 100, dryRun: false, after: null })).rejects.toMatchObject({
    status: 503,
    members: { changed: 4, next_cursor: expect.any(String) },
    cause: expect.objectContaining({ message: 'connection terminated' }),
  });
  expect((await countByStatus()).cancelled).toBe(4);
  const counted = (await registry.getMetricsAsJSON()).find((m) => m.name === 'tasks_cancelled_total')!.values.reduce((n, v) => n + v.value, 0);
  expect(counted).toBe(4);
});

/** fx.stack.pool, but `hook` runs once, right after the first page's read of a bulk call answers. */
function afterFirstScan(hook: () => Promise<void>) {
  let done = false;
  return new Proxy(fx.stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? async (config: { text?: string }, values?: unknown[]) => {
            const res = await target.query(config as never, values as never);
            if (!done && typeof config === 'object' && config.text?.includes('row_number() OVER')) {
              done = true;
              await hook();
            }
            return res;
          }
        : Reflect.get(target, prop, receiver),
  });
}

const bulkDeps = (pool: typeof fx.stack.pool) => ({
  pool,
  queue: fx.stack.queue,
  log: silentLog,
  batch: 200,
  scanRows: 1000,
  metrics: apiMetrics(createRegistry('api')),
  underLimits: (async (_tenant: string, _n: number, work: () => Promise<unknown>) => ({ result: await work(), headers: {} })) as never,
});

it("a bulk cancel changes only tasks still in the filter's statuses: one that started running after the page was read is not asked to stop", async () => {
  const ids = await submitMany(5, 'noop');
  // Between the page's read and its cancel a worker leases one of the tasks and records its start,
  // as one does under load: the operator asked for queued tasks only, and this one runs now.
  let started: string | null = null;
  const pool = afterFirstScan(async () => {
    const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 60000 });
    started = lease!.message.id;
    expect((await markRunning(fx.stack.pool, [{ id: started, token: lease!.token, attempt: lease!.attempt }])).started.has(started)).toBe(true);
  });
  const answer = await runBulk(bulkDeps(pool), 'default', { action: 'cancel', filter: { statuses: ['queued'] }, limit: 100, dryRun: false, after: null });
  expect(ids).toContain(started);
  expect(answer.body).toMatchObject({ matched: 5, changed: 4 });
  const { rows } = await fx.stack.pool.query<{ status: string; cancel_requested_at: Date | null }>('SELECT status::text AS status, cancel_requested_at FROM tasks WHERE id = $1', [started]);
  expect(rows[0]).toEqual({ status: 'running', cancel_requested_at: null });
  expect(await countByStatus()).toEqual({ cancelled: 4, running: 1 });
});

it("a bulk retry of cancelled tasks leaves one that died meanwhile dead: it changes only tasks still in the filter's statuses", async () => {
  const ids = await submitMany(5, 'always_fail');
  expect((await post('/tasks/cancel', {})).body).toMatchObject({ changed: 5 });
  // After the redrive's read, another operator retries one of them alone, and it fails for good.
  const pool = afterFirstScan(async () => {
    expect((await post(`/tasks/${ids[0]}/retry`, {})).status).toBe(200);
    ({ worker } = fx.startWorker());
    await waitFor(async () => (await fx.stack.pool.query("SELECT 1 FROM tasks WHERE id = $1 AND status = 'dead'", [ids[0]])).rowCount === 1, 15000, 'the task to die');
    await worker!.stop(0);
    worker = null;
  });
  const answer = await runBulk(bulkDeps(pool), 'default', { action: 'retry', filter: { statuses: ['cancelled'] }, limit: 100, dryRun: false, after: null });
  expect(answer.body).toMatchObject({ matched: 5, changed: 4 });
  expect((await fx.stack.pool.query<{ status: string }>('SELECT status::text AS status FROM tasks WHERE id = $1', [ids[0]])).rows[0]!.status).toBe('dead');
  expect(await countByStatus()).toEqual({ queued: 4, dead: 1 });
});
