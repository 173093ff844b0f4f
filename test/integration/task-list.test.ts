/**
 * GET /tasks against real Postgres: newest first, keyset pages that stay exact while tasks are
 * added, filters that combine, 400s naming the parameter, tenant scope, and the plans: every
 * filter is served by an index, without a sort or a sequential scan, on a table of 200k tasks.
 */
import { Authenticator } from '../../services/api/auth/authenticator';
import { submitTasks } from '../../services/core/tasks/submit';
import { ListCursor, listQuery, listTasks } from '../../services/core/tasks/task-list';
import type { TaskFilter } from '../../services/core/tasks/task-filter';
import { createKey } from '../../services/core/tenancy/key-store';
import { ensureTenant } from '../../services/core/tenancy/tenant-store';
import { silentLog, stackWithApi, startApi } from '../support/stack';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const fx = stackWithApi({}, { each: true });

async function submitMany(n: number, opts: { type?: string; priority?: 'high' | 'default' | 'low'; tenant?: string } = {}): Promise<string[]> {
  const res = await submitTasks(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    Array.from({ length: n }, () => ({ type: opts.type ?? 'noop', priority: opts.priority ?? 'default', payload: {}, maxRetries: 0, tenant: opts.tenant ?? 'default', idempotencyKey: null, canonical: '' })),
  );
  return res.map((r) => r.task.id);
}

async function get(query: string, headers: Record<string, string> = {}, url = fx.api.url): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/tasks${query}`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const ids = (body: Record<string, unknown>) => (body.tasks as { id: string }[]).map((t) => t.id);

it('pages newest first, and paging while tasks are added returns every older task exactly once', async () => {
  const before: string[] = [];
  for (let i = 0; i < 12; i++) before.push(...(await submitMany(40)));
  const seen: string[] = [];
  let cursor: string | null = null;
  let adding = true;
  const adder = (async () => {
    while (adding) await submitMany(7);
  })();
  let pages = 0;
  do {
    const { status, body } = await get(`?limit=37${cursor ? `&cursor=${cursor}` : ''}`);
    expect(status).toBe(200);
    seen.push(...ids(body));
    cursor = body.next_cursor as string | null;
    pages++;
  } while (cursor !== null);
  adding = false;
  await adder;
  // Every task that existed before paging began, exactly once; newer ones may head the first page.
  const counts = new Map<string, number>();
  for (const id of seen) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect(before.every((id) => counts.get(id) === 1)).toBe(true);
  expect(pages).toBeGreaterThanOrEqual(13);
  // Newest first: created_at never increases down the pages.
  const { rows } = await fx.stack.pool.query<{ id: string; t: string }>('SELECT id, created_at::text AS t FROM tasks WHERE id = ANY($1::uuid[])', [seen]);
  const at = new Map(rows.map((r) => [r.id, r.t]));
  for (let i = 1; i < seen.length; i++) expect(at.get(seen[i]!)! <= at.get(seen[i - 1]!)!).toBe(true);
  const first = await get('');
  expect((first.body.tasks as unknown[]).length).toBe(50);
});

it('filters combine: status, type, priority (lists too) and a creation window', async () => {
  await submitMany(5, { type: 'email', priority: 'high' });
  await submitMany(3, { type: 'email', priority: 'low' });
  // Clear of both sides: created_at has microseconds, a JS time only milliseconds, so a time taken
  // in the millisecond of the insert may read as before it.
  await new Promise((r) => setTimeout(r, 20));
  const mid = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const late = await submitMany(4, { type: 'sms', priority: 'high' });
  await fx.stack.pool.query("UPDATE tasks SET status = 'dead' WHERE id = $1", [late[0]]);
  const count = async (q: string) => (await get(q)).body.tasks as { type: string; priority: string; status: string }[];
  expect(await count('?type=email')).toHaveLength(8);
  expect(await count('?type=email&priority=high')).toHaveLength(5);
  expect(await count('?priority=high,low')).toHaveLength(12);
  expect(await count('?priority=high&priority=low&type=sms')).toHaveLength(4);
  expect(await count(`?created_after=${encodeURIComponent(mid)}`)).toHaveLength(4);
  expect(await count(`?created_before=${encodeURIComponent(mid)}&type=email`)).toHaveLength(8);
  expect((await count('?status=dead')).map((t) => t.status)).toEqual(['dead']);
  expect(await count('?status=queued,dead&type=sms')).toHaveLength(4);
  expect(await count('?status=cancelled')).toHaveLength(0);
  // List items carry no runs and no payload (GET /tasks/:id has them).
  expect((await count('?limit=1'))[0]).not.toHaveProperty('runs');
  expect((await count('?limit=1'))[0]).not.toHaveProperty('payload');
});

it('a creation window is exact to the microsecond, as created_at is: a bound finer than a millisecond is not rounded to one', async () => {
  const ids = await submitMany(4, { type: 'window' });
  // Four tasks within one millisecond (as a batch, or a busy second, gives): .123100, .123456, .123457, .123900.
  const at = ['2026-12-05 10:00:00.1231+00', '2026-12-05 10:00:00.123456+00', '2026-12-05 10:00:00.123457+00', '2026-12-05 10:00:00.1239+00'];
  for (const [i, id] of ids.entries()) await fx.stack.pool.query('UPDATE tasks SET created_at = $2 WHERE id = $1', [id, at[i]]);
  const window = async (q: string) => ((await get(`?type=window&${q}`)).body.tasks as { id: string }[]).map((t) => ids.indexOf(t.id)).sort();
  expect(await window(`created_after=${encodeURIComponent('2026-12-05T10:00:00.123456Z')}`)).toEqual([2, 3]);
  expect(await window(`created_before=${encodeURIComponent('2026-12-05T10:00:00.123456Z')}`)).toEqual([0]);
  expect(await window(`created_after=${encodeURIComponent('2026-12-05T11:00:00.1231+01:00')}&created_before=${encodeURIComponent('2026-12-05T10:00:00.1239Z')}`)).toEqual([1, 2]);
  // Finer than a microsecond: strictly after .1234565 is .123457 on; strictly before it, .123456 and earlier.
  expect(await window(`created_after=${encodeURIComponent('2026-12-05T10:00:00.1234565Z')}`)).toEqual([2, 3]);
  expect(await window(`created_before=${encodeURIComponent('2026-12-05T10:00:00.1234565Z')}`)).toEqual([0, 1]);
  expect(await window(`created_before=${encodeURIComponent('2026-12-05T10:00:00.123456001Z')}`)).toEqual([0, 1]);
  // The latest time there is, rounded up, is in the year 10000: still a bound Postgres reads.
  expect(await window(`created_before=${encodeURIComponent('9999-12-31T23:59:59.999999999Z')}&created_after=${encodeURIComponent('0001-01-01T00:00:00.0000001Z')}`)).toEqual([0, 1, 2, 3]);
});

it('bad parameters are 400s naming them', async () => {
  const cases: [string, string][] = [
    ['?status=bogus', 'status'],
    ['?status=queued,', 'status'],
    ['?priority=urgent', 'priority'],
    ['?type=a%20b', 'type'],
    ['?type=a&type=b', 'type'],
    ['?limit=0', 'limit'],
    ['?limit=501', 'limit'],
    ['?limit=ten', 'limit'],
    ['?limit=1&limit=2', 'limit'],
    ['?cursor=nope', 'cursor'],
    [`?cursor=${Buffer.from('["2026-01-01 00:00:00+00","x"]').toString('base64url')}`, 'cursor'],
    // Well formed, but no time Postgres could read: 30 February, hour 25, year 0.
    [`?cursor=${Buffer.from('["2026-02-30 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}`, 'cursor'],
    [`?cursor=${Buffer.from('["2026-01-01 25:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}`, 'cursor'],
    [`?cursor=${Buffer.from('["0000-01-01 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}`, 'cursor'],
    ['?created_after=yesterday', 'created_after'],
    ['?created_after=0000-01-01T00:00:00Z', 'created_after'],
    ['?created_before=9999-12-31T23:59:59-23:59', 'created_before'],
    ['?created_after=0001-01-01T00:00:00%2B01:00', 'created_after'],
    ['?created_before=2026-12-05T10:00:00', 'created_before'],
    ['?colour=red', 'colour'],
  ];
  for (const [q, field] of cases) {
    const res = await get(q);
    expect([q, res.status]).toEqual([q, 400]);
    expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
  }
});

it('a tenant lists only its own tasks; an admin lists another tenant’s with ?tenant=', async () => {
  const auth = new Authenticator(fx.stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog });
  const keyed = await startApi(fx.stack, fx.stack.queue, auth);
  try {
    const mine = await submitMany(3, { tenant: 'team-a' });
    await submitMany(2, { tenant: 'team-b' });
    await ensureTenant(fx.stack.pool, 'team-b');
    const a = await createKey(fx.stack.pool, { tenant: 'team-a', scopes: ['tasks:read'], expiresInMs: null });
    const admin = await createKey(fx.stack.pool, { tenant: 'ops', scopes: ['admin'], expiresInMs: null });
    const w = await createKey(fx.stack.pool, { tenant: 'team-a', scopes: ['tasks:write'], expiresInMs: null });
    const asA = await get('', { authorization: `Bearer ${a.key}` }, keyed.url);
    expect(ids(asA.body).sort()).toEqual([...mine].sort());
    expect((await get('?tenant=team-b', { authorization: `Bearer ${a.key}` }, keyed.url)).status).toBe(403);
    expect(ids((await get('?tenant=team-b', { authorization: `Bearer ${admin.key}` }, keyed.url)).body)).toHaveLength(2);
    expect((await get('', { authorization: `Bearer ${w.key}` }, keyed.url)).status).toBe(403);
    expect((await get('', {}, keyed.url)).status).toBe(401);
  } finally {
    await keyed.server.stop();
  }
});

it('a filter that matches few tasks reads a bounded number of rows a page: short pages carry a cursor, and every match comes once', async () => {
  // 20,000 tasks, one in 1,997 of them rare, each created a millisecond apart (enough rows that the
  // planner reads them through the index rather than sorting the table).
  await fx.stack.pool.query(`
    INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, created_at)
    SELECT gen_random_uuid(), 'scan', CASE WHEN i % 1997 = 0 THEN 'rare' ELSE 'common' END, 'default', '{}', 'succeeded', 0,
           now() - i * interval '1 millisecond'
      FROM generate_series(1, 20000) AS i`);
  await fx.stack.pool.query('ANALYZE tasks');
  const rare = (await fx.stack.pool.query<{ id: string }>("SELECT id FROM tasks WHERE tenant = 'scan' AND type = 'rare' ORDER BY created_at DESC")).rows.map((r) => r.id);
  expect(rare).toHaveLength(10);
  const seen: string[] = [];
  const sizes: number[] = [];
  let after: ListCursor | null = null;
  do {
    const page: Awaited<ReturnType<typeof listTasks>> = await listTasks(fx.stack.pool, 'scan', { type: 'rare' }, 3, after, 1000);
    seen.push(...page.tasks.map((t) => t.id));
    sizes.push(page.tasks.length);
    after = page.next;
  } while (after !== null && sizes.length < 50);
  expect(seen).toEqual(rare);
  // 1,000 rows a read: twenty reads cover the table, each finding one rare task or none (a short or
  // empty page with a cursor), and one more finds the end.
  expect(sizes).toHaveLength(21);
  expect(sizes.every((n) => n <= 1)).toBe(true);
  expect(sizes.filter((n) => n === 0).length).toBe(11);
  // A dense filter still fills its pages: the bound counts rows read, not matches.
  const dense = await listTasks(fx.stack.pool, 'scan', { type: 'common' }, 50, null, 1000);
  expect(dense.tasks).toHaveLength(50);
  expect(dense.next).not.toBeNull();
  // What a read costs is bounded by the setting: EXPLAIN ANALYZE of a filter matching nothing reads
  // 1,000 rows over both indexes (unfinished and final tasks), give or take the one row
  // row_number() may look ahead for ties.
  const q = listQuery('scan', { type: 'nothing' }, 50, null, 1000);
  const { rows } = await fx.stack.pool.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.text}`, q.values);
  const scans: { 'Node Type': string; 'Actual Rows': number }[] = [];
  const walk = (n: Record<string, unknown>) => {
    if (String(n['Node Type']).includes('Scan') && n['Relation Name'] === 'tasks') scans.push(n as never);
    for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
  };
  walk((rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
  const read = scans.reduce((sum, n) => sum + n['Actual Rows'], 0);
  expect(read).toBeGreaterThanOrEqual(1000);
  expect(read).toBeLessThanOrEqual(1001);
  const empty = await listTasks(fx.stack.pool, 'scan', { type: 'nothing' }, 50, null, 1000);
  expect(empty.tasks).toEqual([]);
  expect(empty.next).not.toBeNull();
});

describe('plans on 200k tasks', () => {
  const plan = async (filter: TaskFilter, cursor = false) => {
    const after = cursor ? { createdAt: (await fx.stack.pool.query("SELECT (now() - interval '1 hour')::text AS t")).rows[0].t as string, id: 'ffffffff-ffff-4fff-bfff-ffffffffffff' } : null;
    const q = listQuery('t3', filter, 50, after);
    const { rows } = await fx.stack.pool.query(`EXPLAIN (FORMAT JSON) ${q.text}`, q.values);
    const nodes: { 'Node Type': string; 'Index Name'?: string }[] = [];
    const walk = (n: Record<string, unknown>) => {
      nodes.push(n as never);
      for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
    };
    walk((rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
    return nodes;
  };

  it('every filter is read through an index, in order: no sort, no sequential scan', async () => {
    // 200k tasks of 10 tenants over the last day, a sixth of them dead or cancelled (a long dead-letter
    // history: with only a few, the planner rightly sorts them instead, which costs no more).
    await fx.stack.pool.query(`
      INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, created_at)
      SELECT gen_random_uuid(), 't' || (i % 10), (ARRAY['email','sms','report','noop'])[1 + i % 4], (ARRAY['critical','high','default','low'])[1 + (i / 7) % 4], '{}',
             (CASE WHEN i % 9 = 0 THEN 'dead' WHEN i % 13 = 0 THEN 'cancelled' WHEN i % 50 = 1 THEN 'queued' ELSE 'succeeded' END)::task_status,
             3, now() - (i * interval '400 milliseconds')
        FROM generate_series(1, 200000) AS i`);
    await fx.stack.pool.query('ANALYZE tasks');
    const cases: [string, TaskFilter, boolean, ...string[]][] = [
      // All statuses: the waiting, scheduled, unfinished and final tasks' indexes, merged in order.
      ['no filter', {}, false, 'tasks_tenant_waiting_idx', 'tasks_tenant_scheduled_idx', 'tasks_tenant_unfinished_idx', 'tasks_tenant_finished_idx'],
      ['a later page', {}, true, 'tasks_tenant_waiting_idx', 'tasks_tenant_scheduled_idx', 'tasks_tenant_unfinished_idx', 'tasks_tenant_finished_idx'],
      ['scheduled', { statuses: ['scheduled'] }, false, 'tasks_tenant_scheduled_idx'],
      ['waiting', { statuses: ['waiting'] }, false, 'tasks_tenant_waiting_idx'],
      // A schedule's tasks, whatever their status, from its own index.
      ['a schedule', { schedule: 'nightly' }, false, 'tasks_tenant_schedule_idx'],
      ['a schedule, dead ones, a later page', { schedule: 'nightly', statuses: ['dead'] }, true, 'tasks_tenant_schedule_idx'],
      ['dead', { statuses: ['dead'] }, false, 'tasks_tenant_failed_idx'],
      ['dead and cancelled, a later page', { statuses: ['dead', 'cancelled'] }, true, 'tasks_tenant_failed_idx'],
      ['dead of one type', { statuses: ['dead'], type: 'sms' }, false, 'tasks_tenant_failed_idx'],
      ['succeeded', { statuses: ['succeeded'] }, false, 'tasks_tenant_finished_idx'],
      ['type', { type: 'sms' }, false, 'tasks_tenant_waiting_idx', 'tasks_tenant_scheduled_idx', 'tasks_tenant_unfinished_idx', 'tasks_tenant_finished_idx'],
      ['priority', { priorities: ['high', 'low'] }, false, 'tasks_tenant_waiting_idx', 'tasks_tenant_scheduled_idx', 'tasks_tenant_unfinished_idx', 'tasks_tenant_finished_idx'],
      // (A few hundred unfinished tasks in the window: the planner may read them all through the
      // index and sort them, which costs no more. With many, the ordered read wins.)
      ['queued in a window', { statuses: ['queued'], createdAfter: new Date(Date.now() - 3_600_000).toISOString() }, false, 'tasks_tenant_unfinished_idx'],
      ['running or succeeded', { statuses: ['running', 'succeeded'] }, true, 'tasks_tenant_unfinished_idx', 'tasks_tenant_finished_idx'],
    ];
    for (const [name, filter, cursor, ...indexes] of cases) {
      const nodes = await plan(filter, cursor);
      const types = nodes.map((n) => n['Node Type']);
      if (process.env.SHOW_PLANS) console.log(name, JSON.stringify(nodes.map((n) => [n['Node Type'], n['Index Name']])));
      const used = [...new Set(nodes.flatMap((n) => (n['Index Name'] ? [n['Index Name']] : [])))].sort();
      const sorted = types.includes('Sort') && name !== 'queued in a window';
      expect([name, types.includes('Seq Scan'), sorted, used]).toEqual([name, false, false, indexes.sort()]);
    }
  });
});
