/**
 * The schedule routes against real Postgres and Redis: create, list, get (next ticks with their
 * offsets, last runs), change, pause and resume, delete, trigger; names unique per tenant, tenants
 * kept apart, scopes, the bound per tenant, and every bad input a 400 naming its field. Every
 * answer is checked against the OpenAPI document (the contract test).
 */
import { Authenticator } from '../../services/api/auth/authenticator';
import { ApiError, TaskSchedulerClient } from '../../services/client';
import { createKey } from '../../services/core/tenancy/key-store';
import { ensureTenant } from '../../services/core/tenancy/tenant-store';
import { silentLog, stackWithApi, startApi, startWorker, taskStatus, waitFor } from '../support/stack';
import { fetch } from '../support/contract';

const fx = stackWithApi(
  { MAX_SCHEDULES_PER_TENANT: 5, POLL_INTERVAL_MS: 10 },
  {
    // The tenants the open API (an admin) acts on here.
    prepare: async (stack) => {
      for (const t of ['beta', 'gamma']) await ensureTenant(stack.pool, t);
    },
  },
);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, url = fx.api.url): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
}

const fields = (b: Json): string[] => (b.errors as { field: string }[]).map((e) => e.field).sort();
const nightly = (name: string, extra: Json = {}) => ({ name, cron: '0 3 * * *', task: { type: 'noop' }, ...extra });

it('creates a schedule with its defaults and its next tick on the database clock; a duplicate name is a 409', async () => {
  const before = Date.now();
  const made = await call('POST', '/schedules', { name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', task: { type: 'report.build', payload: { scope: 'all' }, priority: 'high' } });
  expect(made.status).toBe(201);
  expect(made.body).toMatchObject({
    tenant: 'default',
    name: 'nightly',
    cron: '0 3 * * *',
    timezone: 'Europe/Berlin',
    task: { type: 'report.build', payload: { scope: 'all' }, priority: 'high', max_retries: fx.stack.cfg.DEFAULT_MAX_RETRIES, retry: null, timeout_ms: null },
    misfire: 'run_once',
    catch_up_limit: 10,
    overlap: 'allow',
    paused: false,
    last_tick: null,
    last_outcome: null,
  });
  const next = Date.parse(made.body.next_tick);
  expect(next).toBeGreaterThan(before - 1000);
  expect(next - before).toBeLessThanOrEqual(86_400_000 + 3_600_000);
  // 03:00 in Berlin is 02:00 UTC in winter.
  expect(made.body.next_tick).toMatch(/T02:00:00\.000Z$/);
  const { rows } = await fx.stack.pool.query('SELECT next_tick, created_at FROM schedules WHERE name = $1', ['nightly']);
  expect(rows[0].next_tick.toISOString()).toBe(made.body.next_tick);

  const again = await call('POST', '/schedules', nightly('nightly'));
  expect(again.status).toBe(409);
  expect(fields(again.body)).toEqual(['name']);
  await call('DELETE', '/schedules/nightly');
});

it.each([
  [{ cron: '61 * * * *' }, ['cron']],
  [{ cron: '* * *' }, ['cron']],
  [{ cron: '0 0 30 2 *' }, ['cron']],
  [{ timezone: 'Mars/Olympus' }, ['timezone']],
  [{ task: { type: 'noop', retry: { base_ms: 0 } } }, ['task.retry.base_ms']],
  [{ task: { type: 'noop', idempotency_key: 'k' } }, ['task.idempotency_key']],
  // A tick runs at its time: a delay would be taken and then dropped.
  [{ task: { type: 'noop', delay_ms: 3_600_000 } }, ['task.delay_ms']],
  [{ task: { type: 'noop', run_at: '2030-01-01T00:00:00Z' } }, ['task.run_at']],
  [{ task: { type: 'no op', priority: 'urgent' } }, ['task.priority', 'task.type']],
  [{ task: { type: 'noop', timeout_ms: 0 } }, ['task.timeout_ms']],
  [{ task: 'noop' }, ['task']],
  [{ misfire: 'later', catch_up_limit: 1001, overlap: 'never', paused: 'yes' }, ['catch_up_limit', 'misfire', 'overlap', 'paused']],
  [{ name: 'has space' }, ['name']],
  [{ name: '-leading' }, ['name']],
  [{ colour: 'red' }, ['colour']],
])('refuses %j with a 400 naming %j', async (change, named) => {
  const r = await call('POST', '/schedules', { ...nightly('bad'), ...change });
  expect(r.status).toBe(400);
  expect(fields(r.body)).toEqual(named);
  expect((await fx.stack.pool.query('SELECT count(*)::int AS n FROM schedules')).rows[0].n).toBe(0);
});

it('refuses a payload POST /tasks would refuse, and bodies that are not objects', async () => {
  const nul = await call('POST', '/schedules', '{"name":"n","cron":"* * * * *","task":{"type":"noop","payload":{"a":"\\u0000"}}}');
  expect(nul.status).toBe(400);
  expect(fields(nul.body)).toEqual(['task.payload.a']);
  expect((await call('POST', '/schedules', '[]')).status).toBe(400);
  expect((await call('POST', '/schedules', 'not json')).status).toBe(400);
  expect((await call('PATCH', '/schedules/x', '{}')).status).toBe(400);
});

it('lists by name a page at a time, up to MAX_SCHEDULES_PER_TENANT', async () => {
  for (const n of ['c', 'a', 'e', 'b', 'd']) expect((await call('POST', '/schedules', nightly(n))).status).toBe(201);
  const full = await call('POST', '/schedules', nightly('f'));
  expect(full.status).toBe(409);
  expect(full.body.title).toBe('Too many schedules');
  const first = await call('GET', '/schedules?limit=2');
  expect(first.body.schedules.map((s: Json) => s.name)).toEqual(['a', 'b']);
  const second = await call('GET', `/schedules?limit=2&cursor=${first.body.next_cursor}`);
  expect(second.body.schedules.map((s: Json) => s.name)).toEqual(['c', 'd']);
  const last = await call('GET', `/schedules?limit=2&cursor=${second.body.next_cursor}`);
  expect(last.body).toMatchObject({ schedules: [{ name: 'e' }], next_cursor: null });
  for (const q of ['limit=0', 'limit=501', 'cursor=abc!', 'colour=red', 'limit=1&limit=2']) expect((await call('GET', `/schedules?${q}`)).status).toBe(400);
  for (const n of ['a', 'b', 'c', 'd', 'e']) expect((await call('DELETE', `/schedules/${n}`)).status).toBe(200);
});

it('keeps tenants apart: another tenant\'s schedule is a 404, and the same name may exist in both', async () => {
  expect((await call('POST', '/schedules?tenant=beta', nightly('shared'))).status).toBe(201);
  expect((await call('GET', '/schedules/shared')).status).toBe(404);
  expect((await call('PATCH', '/schedules/shared', { paused: true })).status).toBe(404);
  expect((await call('POST', '/schedules/shared/trigger')).status).toBe(404);
  expect((await call('DELETE', '/schedules/shared')).status).toBe(404);
  expect((await call('GET', '/schedules')).body.schedules).toEqual([]);
  expect((await call('POST', '/schedules', nightly('shared'))).status).toBe(201);
  expect((await call('GET', '/schedules/shared?tenant=beta')).body.tenant).toBe('beta');
  expect((await call('DELETE', '/schedules/shared?tenant=beta')).status).toBe(200);
  expect((await call('GET', '/schedules/shared')).body.tenant).toBe('default');
  await call('DELETE', '/schedules/shared');
});

it('asks tasks:read to read and tasks:write to change, with keys', async () => {
  const auth = new Authenticator(fx.stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog });
  const keyed = await startApi(fx.stack, fx.stack.queue, auth);
  try {
    const reader = (await createKey(fx.stack.pool, { tenant: 'gamma', scopes: ['tasks:read'], expiresInMs: null })).key;
    const writer = (await createKey(fx.stack.pool, { tenant: 'gamma', scopes: ['tasks:write'], expiresInMs: null })).key;
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    expect((await call('POST', '/schedules', nightly('g'), as(reader), keyed.url)).status).toBe(403);
    expect((await call('POST', '/schedules', nightly('g'), as(writer), keyed.url)).status).toBe(201);
    expect((await call('GET', '/schedules/g', undefined, as(writer), keyed.url)).status).toBe(403);
    expect((await call('GET', '/schedules/g', undefined, as(reader), keyed.url)).body.tenant).toBe('gamma');
    expect((await call('GET', '/schedules/g?tenant=beta', undefined, as(reader), keyed.url)).status).toBe(403);
    expect((await call('PATCH', '/schedules/g', { paused: true }, as(reader), keyed.url)).status).toBe(403);
    expect((await call('DELETE', '/schedules/g', undefined, as(writer), keyed.url)).status).toBe(200);
    expect((await call('GET', '/schedules', undefined, {}, keyed.url)).status).toBe(401);
  } finally {
    await keyed.server.stop();
    await auth.close();
  }
});

it('previews the next fire times with their offsets across a daylight-saving change', async () => {
  // Clocks in Berlin go forward on 2027-03-28 (02:00 → 03:00): 02:30 does not exist that day, and
  // the tick fires at the transition (cron.ts's rule); the offset changes from +01:00 to +02:00.
  expect((await call('POST', '/schedules', { name: 'dst', cron: '30 2 * * *', timezone: 'Europe/Berlin', task: { type: 'noop' } })).status).toBe(201);
  await fx.stack.pool.query("UPDATE schedules SET next_tick = '2027-03-26T01:30:00Z' WHERE name = 'dst'");
  const got = await call('GET', '/schedules/dst?preview=4');
  expect(got.status).toBe(200);
  expect(got.body.next_ticks).toEqual([
    { at: '2027-03-26T01:30:00.000Z', local: '2027-03-26T02:30:00+01:00' },
    { at: '2027-03-27T01:30:00.000Z', local: '2027-03-27T02:30:00+01:00' },
    { at: '2027-03-28T01:00:00.000Z', local: '2027-03-28T03:00:00+02:00' },
    { at: '2027-03-29T00:30:00.000Z', local: '2027-03-29T02:30:00+02:00' },
  ]);
  expect((await call('GET', '/schedules/dst')).body.next_ticks).toHaveLength(5);
  expect((await call('GET', '/schedules/dst?preview=100')).body.next_ticks).toHaveLength(100);
  for (const q of ['preview=0', 'preview=101', 'preview=x', 'preview=1&preview=2', 'other=1']) {
    const r = await call('GET', `/schedules/dst?${q}`);
    expect(r.status).toBe(400);
    expect(fields(r.body)).toEqual([q.split('=')[0]]);
  }
  expect(fields((await call('GET', '/schedules/has%20space')).body)).toEqual(['name']);
  expect((await call('GET', '/schedules/nothing')).status).toBe(404);
  await call('DELETE', '/schedules/dst');
});

it('an hour field naming every hour however it is written fires every real hour through a fall-back, as * does', async () => {
  // New York goes back on 2026-11-01 (02:00 EDT → 01:00 EST): an hourly schedule fires at both 01:00s.
  const hourly = ['2026-11-01T00:00:00-04:00', '2026-11-01T01:00:00-04:00', '2026-11-01T01:00:00-05:00', '2026-11-01T02:00:00-05:00', '2026-11-01T03:00:00-05:00'];
  for (const [name, cron] of [['h-star', '0 * * * *'], ['h-question', '0 ? * * *'], ['h-range-step', '0 0-23/1 * * *'], ['h-halves', '0 0-11,12-23 * * *'], ['h-seconds', '0 0 ? * * *']]) {
    expect((await call('POST', '/schedules', { name, cron, timezone: 'America/New_York', task: { type: 'noop' } })).status).toBe(201);
    await fx.stack.pool.query("UPDATE schedules SET next_tick = '2026-11-01T04:00:00Z' WHERE name = $1", [name]);
    const got = await call('GET', `/schedules/${name}?preview=5`);
    expect([cron, got.body.next_ticks.map((t: { local: string }) => t.local)]).toEqual([cron, hourly]);
    await call('DELETE', `/schedules/${name}`);
  }
});

it('changes a schedule; a new cron or zone, and a resume, take the next tick from now; pausing keeps it', async () => {
  expect((await call('POST', '/schedules', nightly('edit'))).status).toBe(201);
  await fx.stack.pool.query("UPDATE schedules SET next_tick = '2020-01-01T03:00:00Z', last_tick = '2019-12-31T03:00:00Z', last_outcome = 'fired' WHERE name = 'edit'");
  const policy = await call('PATCH', '/schedules/edit', { misfire: 'catch_up', catch_up_limit: 3, overlap: 'skip' });
  expect(policy.status).toBe(200);
  expect(policy.body).toMatchObject({ misfire: 'catch_up', catch_up_limit: 3, overlap: 'skip', next_tick: '2020-01-01T03:00:00.000Z', last_outcome: 'fired', cron: '0 3 * * *' });

  const paused = await call('PATCH', '/schedules/edit', { paused: true });
  expect(paused.body).toMatchObject({ paused: true, next_tick: '2020-01-01T03:00:00.000Z' });
  // Paused, the preview is what a resume would give: from now on.
  const preview = await call('GET', '/schedules/edit?preview=1');
  expect(Date.parse(preview.body.next_ticks[0].at)).toBeGreaterThan(Date.now() - 1000);
  // The ticks missed while paused are not run: resuming starts after now.
  const resumed = await call('PATCH', '/schedules/edit', { paused: false });
  expect(resumed.body.paused).toBe(false);
  expect(Date.parse(resumed.body.next_tick)).toBeGreaterThan(Date.now() - 1000);
  expect(resumed.body.next_tick).toBe(preview.body.next_ticks[0].at);

  const respec = await call('PATCH', '/schedules/edit', { cron: '0 0 12 * * *', timezone: 'America/New_York', task: { type: 'email', payload: { to: 'a@b.c' }, retry: { backoff: 'fixed', base_ms: 1000 } } });
  expect(respec.status).toBe(200);
  expect(respec.body).toMatchObject({ cron: '0 0 12 * * *', timezone: 'America/New_York', task: { type: 'email', payload: { to: 'a@b.c' }, priority: 'default', retry: { backoff: 'fixed', base_ms: 1000 } } });
  expect(respec.body.next_tick).toMatch(/T1[67]:00:00\.000Z$/);
  expect(Date.parse(respec.body.updated_at)).toBeGreaterThan(Date.parse(respec.body.created_at));

  for (const [body, named] of [
    [{ cron: '0 0 31 2 *' }, ['cron']],
    [{ timezone: 'Nowhere/Land' }, ['timezone']],
    [{ name: 'renamed' }, ['name']],
    [{}, ['(body)']],
    [{ task: { type: 'noop', max_retries: 101 } }, ['task.max_retries']],
  ] as [Json, string[]][]) {
    const r = await call('PATCH', '/schedules/edit', body);
    expect(r.status).toBe(400);
    expect(fields(r.body)).toEqual(named);
  }
  expect((await call('GET', '/schedules/edit')).body.cron).toBe('0 0 12 * * *');
  expect((await call('PATCH', '/schedules/missing', { paused: true })).status).toBe(404);
  await call('DELETE', '/schedules/edit');
});

it('triggers a run now, outside the schedule, paused or not; the task runs and shows in last_runs; deleting keeps the tasks', async () => {
  const { worker } = startWorker(fx.stack);
  try {
    expect((await call('POST', '/schedules', nightly('manual', { paused: true, task: { type: 'noop', payload: { n: 1 }, priority: 'low', max_retries: 2 } }))).status).toBe(201);
    const t = await call('POST', '/schedules/manual/trigger');
    expect(t.status).toBe(201);
    expect(t.body).toMatchObject({ tenant: 'default', type: 'noop', payload: { n: 1 }, priority: 'low', max_retries: 2, schedule: 'manual', scheduled_for: null });
    await waitFor(async () => (await taskStatus(fx.stack.pool, t.body.id)).status === 'succeeded');
    const second = await call('POST', '/schedules/manual/trigger');
    const got = await call('GET', '/schedules/manual');
    expect(got.body.last_runs.map((r: Json) => r.id)).toEqual([second.body.id, t.body.id]);
    expect(got.body.last_runs[1]).toMatchObject({ status: 'succeeded', scheduled_for: null, finished_at: expect.any(String) });
    const deleted = await call('DELETE', '/schedules/manual');
    expect(deleted.body.name).toBe('manual');
    expect((await call('DELETE', '/schedules/manual')).status).toBe(404);
    expect((await call('POST', '/schedules/manual/trigger')).status).toBe(404);
    expect((await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE schedule = 'manual'")).rows[0].n).toBe(2);
  } finally {
    await worker.stop(0);
  }
});

it('answers 405 with Allow for the methods a schedule path lacks', async () => {
  const put = await fetch(`${fx.api.url}/schedules/x`, { method: 'PUT' });
  expect(put.status).toBe(405);
  expect(put.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE');
  expect((await fetch(`${fx.api.url}/schedules/x/trigger`, { method: 'GET' })).headers.get('allow')).toBe('POST');
  expect((await fetch(`${fx.api.url}/schedules`, { method: 'DELETE' })).headers.get('allow')).toBe('GET, HEAD, POST');
});

it('refuses a bad expression or zone in a patch with a 400 even when there is no such schedule', async () => {
  const r = await call('PATCH', '/schedules/none', { cron: '0 0 30 2 *' });
  expect(r.status).toBe(400);
  expect(fields(r.body)).toEqual(['cron']);
  expect(fields((await call('PATCH', '/schedules/none', { timezone: 'Mars/Olympus' })).body)).toEqual(['timezone']);
});

it('the typed client: create, page through, preview, change, trigger, delete, and ApiError on a refusal', async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url });
  for (const n of ['k1', 'k2', 'k3']) await client.createSchedule({ name: n, cron: '@hourly', timezone: 'Asia/Kolkata', task: { type: 'noop' } });
  expect((await client.listSchedules({ pageSize: 2 })).map((s) => s.name)).toEqual(['k1', 'k2', 'k3']);
  const ticks = await client.previewSchedule('k1', 3);
  expect(ticks).toHaveLength(3);
  // On the hour in Kolkata, half past in UTC.
  for (const t of ticks) {
    expect(t.local).toMatch(/:00:00\+05:30$/);
    expect(t.at).toMatch(/:30:00\.000Z$/);
  }
  expect((await client.updateSchedule('k1', { paused: true })).paused).toBe(true);
  const task = await client.triggerSchedule('k1');
  expect(task).toMatchObject({ schedule: 'k1', scheduled_for: null, status: 'queued' });
  expect((await client.getSchedule('k1')).last_runs.map((r) => r.id)).toEqual([task.id]);
  const refused = await client.createSchedule({ name: 'k1', cron: '@hourly', task: { type: 'noop' } }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(ApiError);
  expect((refused as ApiError).status).toBe(409);
  for (const n of ['k1', 'k2', 'k3']) expect((await client.deleteSchedule(n)).name).toBe(n);
});
