/**
 * The workflow routes against real Postgres and Redis: create (201, ids, Location, the metric),
 * every bad body a 400 naming the step and field with nothing created, idempotent replay and
 * conflict, the detail's shape, paging and filters, cancel (200, 409, 404), tenants kept apart,
 * 10,000 steps in one body, and admission as a batch of N tasks. Every answer is checked against
 * the OpenAPI document (the contract test).
 */
import type { Registry } from 'prom-client';
import { createApp } from '../../services/api/app';
import { ApiError, NewWorkflow, TaskSchedulerClient } from '../../services/client';
import { RequestAdmission } from '../../services/api/limits/request-admission';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { TenantLabels } from '../../services/core/observability/tenant-labels';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { ensureTenant, setTenant } from '../../services/core/tenancy/tenant-store';
import { MAX_WORKFLOW_STEPS } from '../../services/core/workflows/workflow';
import { listWorkflows } from '../../services/core/workflows/workflow-store';
import type { Worker } from '../../services/worker/worker';
import { fetch } from '../support/contract';
import { silentLog, stackWithApi, startWorker, waitFor } from '../support/stack';

const fx = stackWithApi(
  { POLL_INTERVAL_MS: 10 },
  {
    // The tenants the open API (an admin) acts on here.
    prepare: async (stack) => {
      for (const t of ['beta', 'gamma', 'client-t']) await ensureTenant(stack.pool, t);
    },
  },
);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, url = fx.api.url): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {}, headers: res.headers };
}

const started = async () => Number(/\} (\d+)$/m.exec(await fx.api.registry.getSingleMetricAsString('workflows_started_total'))![1]);
const fields = (b: Json): string[] => (b.errors as { field: string }[]).map((e) => e.field).sort();
const count = async (table: 'workflows' | 'tasks') => (await fx.stack.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
/** A diamond: extract, then clean and stats, then load. */
const diamond = (name = 'etl', type = 'sleeper'): NewWorkflow => ({
  name,
  tasks: [
    { key: 'extract', type, payload: { sleep_ms: 1 } },
    { key: 'clean', type: 'noop', depends_on: ['extract'], max_retries: 2 },
    { key: 'stats', type: 'noop', depends_on: ['extract'], priority: 'low' },
    { key: 'load', type: 'noop', depends_on: ['clean', 'stats'], timeout_ms: 60_000 },
  ],
});

it('creates a workflow: 201, Location, each step\'s task, roots queued and the others waiting, the metric counted', async () => {
  const made = await call('POST', '/workflows', diamond());
  expect(made.status).toBe(201);
  const w = made.body.workflow;
  expect(made.headers.get('location')).toBe(`/workflows/${w.id}`);
  expect(w).toMatchObject({ tenant: 'default', name: 'etl', status: 'running', on_failure: 'cancel_dependents', steps_total: 4, steps_unfinished: 4, steps_failed: 0, idempotency_key: null, finished_at: null });
  expect(made.body.steps.map((s: Json) => s.key)).toEqual(['extract', 'clean', 'stats', 'load']);
  const { rows } = await fx.stack.pool.query('SELECT id::text, step_key, status::text, workflow_id::text, max_retries, priority, timeout_ms FROM tasks WHERE workflow_id = $1 ORDER BY id', [w.id]);
  expect(rows.map((r) => [r.id, r.step_key])).toEqual(made.body.steps.map((s: Json) => [s.task_id, s.key]));
  expect(rows.map((r) => r.status)).toEqual(['queued', 'waiting', 'waiting', 'waiting']);
  expect(rows[1]).toMatchObject({ max_retries: 2 });
  expect(rows[2]).toMatchObject({ priority: 'low', max_retries: fx.stack.cfg.DEFAULT_MAX_RETRIES });
  expect(rows[3]).toMatchObject({ timeout_ms: 60_000 });
  expect(await started()).toBe(1);

  const got = await call('GET', `/workflows/${w.id.toUpperCase()}`);
  expect(got.status).toBe(200);
  expect(got.body.workflow).toMatchObject({ id: w.id, status: 'running', counts: { queued: 1, waiting: 3, running: 0, succeeded: 0, dead: 0, cancelled: 0 } });
  expect(got.body.steps).toMatchObject([
    { key: 'extract', task_id: made.body.steps[0].task_id, type: 'sleeper', status: 'queued', depends_on: [], deps_waiting: 0, attempts: 0, cancelled_by: null, started_at: null },
    { key: 'clean', status: 'waiting', depends_on: ['extract'], deps_waiting: 1 },
    { key: 'stats', status: 'waiting', depends_on: ['extract'], priority: 'low' },
    { key: 'load', status: 'waiting', depends_on: ['clean', 'stats'], deps_waiting: 2 },
  ]);
  // Its steps are tasks like any other.
  expect((await call('GET', `/tasks/${made.body.steps[3].task_id}`)).body).toMatchObject({ status: 'waiting', type: 'noop' });
  expect((await call('POST', `/workflows/${w.id}/cancel`)).status).toBe(200);
});

it.each([
  [{ tasks: [{ key: 'a', type: 'noop' }] }, ['name']],
  [{ name: 'x', tasks: [] }, ['tasks']],
  [{ name: 'x', on_failure: 'explode', tasks: [{ key: 'a', type: 'noop' }] }, ['on_failure']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'no op', priority: 'urgent' }] }, ['tasks[1].priority', 'tasks[1].type']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop', retry: { base_ms: 0 } }] }, ['tasks[0].retry.base_ms']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop', delay_ms: 5 }] }, ['tasks[0].delay_ms']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['ghost'] }] }, ['tasks[1].depends_on']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'a', type: 'noop' }] }, ['tasks[1].key']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: ['a'] }] }, ['tasks[0].depends_on']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: ['b'] }, { key: 'b', type: 'noop', depends_on: ['a'] }] }, ['tasks[0].depends_on']],
  [{ name: 'x', tasks: [{ key: 'a', type: 'noop', payload: null }] }, ['tasks[0].payload']],
])('refuses %j with a 400 naming %j, creating nothing', async (body, named) => {
  const before = [await count('workflows'), await count('tasks')];
  const r = await call('POST', '/workflows', body);
  expect(r.status).toBe(400);
  expect(fields(r.body)).toEqual(named);
  expect([await count('workflows'), await count('tasks')]).toEqual(before);
});

it('names the steps of a cycle, refuses what a payload may not hold, and bodies that are not workflows', async () => {
  const cycle = await call('POST', '/workflows', { name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: ['c'] }, { key: 'b', type: 'noop', depends_on: ['a'] }, { key: 'c', type: 'noop', depends_on: ['b'] }, { key: 'd', type: 'noop' }] });
  expect(cycle.status).toBe(400);
  expect(cycle.body.detail).toBe('tasks[0].depends_on forms a cycle: a -> c -> b -> a');
  const nul = await call('POST', '/workflows', '{"name":"x","tasks":[{"key":"a","type":"noop"},{"key":"b","type":"noop","payload":{"s":"\\u0000"}}]}');
  expect(fields(nul.body)).toEqual(['tasks[1].payload.s']);
  expect((await call('POST', '/workflows', '[]')).status).toBe(400);
  expect((await call('POST', '/workflows', 'not json')).status).toBe(400);
  expect((await call('POST', '/workflows', { name: 'x', tasks: [{ key: 'a', type: 'noop' }] }, { 'content-type': 'text/plain' })).status).toBe(415);
  expect(fields((await call('POST', '/workflows', diamond(), { 'Idempotency-Key': 'has space' })).body)).toEqual(['Idempotency-Key']);
});

it('holds step payloads to MAX_PAYLOAD_DEPTH, as POST /tasks does', async () => {
  const nested = (depth: number): unknown => (depth === 1 ? {} : { a: nested(depth - 1) });
  const at = (depth: number) => ({ name: 'deep', tasks: [{ key: 'a', type: 'noop', payload: nested(depth) }] });
  const ok = await call('POST', '/workflows', at(fx.stack.cfg.MAX_PAYLOAD_DEPTH));
  expect(ok.status).toBe(201);
  const deep = await call('POST', '/workflows', at(fx.stack.cfg.MAX_PAYLOAD_DEPTH + 1));
  expect(deep.status).toBe(400);
  expect(deep.body.errors[0].field).toMatch(/^tasks\[0\]\.payload\.a/);
  expect(deep.body.detail).toContain(`a payload may nest ${fx.stack.cfg.MAX_PAYLOAD_DEPTH} levels`);
  expect((await call('POST', `/workflows/${ok.body.workflow.id}/cancel`)).status).toBe(200);
});

it('a workflow\'s Idempotency-Key is free again once its life (IDEMPOTENCY_TTL_MS) is over, as a task\'s is', async () => {
  const key = { 'Idempotency-Key': 'nightly-expiring' };
  const first = await call('POST', '/workflows', diamond('keyed-old'), key);
  expect(first.status).toBe(201);
  expect((await call('POST', '/workflows', diamond('keyed-new'), key)).status).toBe(409);
  await fx.stack.pool.query(`UPDATE workflows SET idempotency_expires_at = now() - interval '1 second' WHERE id = $1`, [first.body.workflow.id]);
  // Another body with the key after its life: a new workflow (it was a 409 for as long as the row lived).
  const next = await call('POST', '/workflows', diamond('keyed-new'), key);
  expect(next.status).toBe(201);
  expect(next.body.workflow.id).not.toBe(first.body.workflow.id);
  expect(next.body.workflow.idempotency_key).toBe('nightly-expiring');
  // The key now names the new one; the old workflow let go of it.
  expect((await call('POST', '/workflows', diamond('keyed-new'), key)).body.workflow.id).toBe(next.body.workflow.id);
  expect((await call('GET', `/workflows/${first.body.workflow.id}`)).body.workflow.idempotency_key).toBeNull();
  for (const w of [first, next]) expect((await call('POST', `/workflows/${w.body.workflow.id}/cancel`)).status).toBe(200);
});

it('replays a repeated Idempotency-Key and body (200, the same workflow), refuses it with another body (409), per tenant', async () => {
  const key = { 'Idempotency-Key': 'etl-2026-12-06' };
  const before = await started();
  const first = await call('POST', '/workflows', diamond('keyed'), key);
  expect(first.status).toBe(201);
  expect(first.body.workflow.idempotency_key).toBe('etl-2026-12-06');
  // The same request with its defaults written out is the same request.
  const same = diamond('keyed') as Json;
  same.on_failure = 'cancel_dependents';
  same.tasks[0].priority = 'default';
  const again = await call('POST', '/workflows', same, key);
  expect(again.status).toBe(200);
  expect(again.body).toEqual(first.body);
  expect(again.headers.get('location')).toBe(`/workflows/${first.body.workflow.id}`);
  const other = await call('POST', '/workflows', diamond('other'), key);
  expect(other.status).toBe(409);
  expect(fields(other.body)).toEqual(['Idempotency-Key']);
  expect(other.body.detail).toContain(first.body.workflow.id);
  expect((await fx.stack.pool.query('SELECT count(*)::int AS n FROM workflows WHERE idempotency_key = $1', ['etl-2026-12-06'])).rows[0].n).toBe(1);
  expect((await call('POST', '/workflows?tenant=beta', diamond('keyed'), key)).status).toBe(201);
  // Replays and conflicts start nothing.
  expect(await started()).toBe(before + 2);
  for (const tenant of ['default', 'beta']) expect((await call('POST', `/workflows/${(await call('GET', `/workflows?name=keyed&tenant=${tenant}`)).body.workflows[0].id}/cancel?tenant=${tenant}`)).status).toBe(200);
});

it('a filter that matches few reads a bounded number of workflows per page, and paging on finds each match once', async () => {
  // 3,000 finished workflows of one tenant, one in 700 named rare (rows only: no steps are needed to list them).
  await fx.stack.pool.query(
    `INSERT INTO workflows (id, tenant, name, status, on_failure, steps, unfinished, created_at, finished_at)
     SELECT gen_random_uuid(), 'scan-wf', CASE WHEN i % 700 = 0 THEN 'rare' ELSE 'common' END, 'succeeded', 'continue', 1, 0,
            now() - i * interval '1 ms', now()
       FROM generate_series(1, 3000) i`,
  );
  const rare = (await fx.stack.pool.query<{ id: string }>("SELECT id FROM workflows WHERE tenant = 'scan-wf' AND name = 'rare' ORDER BY created_at DESC, id DESC")).rows.map((r) => r.id);
  expect(rare).toHaveLength(4);
  const seen: string[] = [];
  let pages = 0;
  let cursor: Parameters<typeof listWorkflows>[2]['cursor'];
  for (;;) {
    const page = await listWorkflows(fx.stack.pool, 'scan-wf', { name: 'rare', limit: 3, cursor }, 1000);
    pages++;
    seen.push(...page.workflows.map((w) => w.id));
    if (!page.next) break;
    cursor = page.next;
  }
  expect(seen).toEqual(rare);
  // A page of three matches, then pages cut at 1,000 rows read: never the whole tenant at once.
  expect(pages).toBeGreaterThanOrEqual(3);
  const none = await listWorkflows(fx.stack.pool, 'scan-wf', { name: 'nothing', limit: 50 }, 1000);
  expect(none.workflows).toEqual([]);
  expect(none.next).not.toBeNull();
  await fx.stack.pool.query("DELETE FROM workflows WHERE tenant = 'scan-wf'");
});

it('retrying a step whose dependency has not succeeded is a 409 naming that dependency; retrying the dependency resumes both', async () => {
  const made = await call('POST', '/workflows', { name: 'blocked-retry', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }] });
  const [a, b] = made.body.steps.map((s: Json) => s.task_id as string);
  expect((await call('POST', `/tasks/${a}/cancel`)).status).toBe(200);
  expect((await call('GET', `/tasks/${b}`)).body.status).toBe('cancelled');
  const refused = await call('POST', `/tasks/${b}/retry`);
  expect(refused.status).toBe(409);
  expect(refused.body.detail).toContain('depends on steps that have not succeeded: a (cancelled); retry those first');
  expect(fields(refused.body)).toEqual(['depends_on']);
  expect((await call('POST', `/tasks/${a}/retry`)).status).toBe(200);
  expect((await call('GET', `/tasks/${b}`)).body.status).toBe('waiting');
  await call('POST', `/workflows/${made.body.workflow.id}/cancel`);
});

it('lists newest first a page at a time, filtered by status, name and creation time', async () => {
  const made: string[] = [];
  for (const name of ['p-a', 'p-b', 'p-c', 'p-d', 'p-e']) made.push((await call('POST', '/workflows', { name, tasks: [{ key: 'only', type: 'sleeper', payload: { sleep_ms: 1 } }] })).body.workflow.id);
  expect((await call('POST', `/workflows/${made[1]}/cancel`)).status).toBe(200);
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { status: number; body: Json } = await call('GET', `/workflows?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.status).toBe(200);
    expect(page.body.workflows.length).toBeLessThanOrEqual(2);
    seen.push(...page.body.workflows.map((w: Json) => w.id));
    cursor = page.body.next_cursor;
  } while (cursor);
  expect(seen.slice(0, 5)).toEqual([...made].reverse());
  expect(new Set(seen).size).toBe(seen.length);

  expect((await call('GET', '/workflows?name=p-c')).body.workflows.map((w: Json) => w.id)).toEqual([made[2]]);
  expect((await call('GET', '/workflows?status=cancelled&name=p-b')).body.workflows.map((w: Json) => w.id)).toEqual([made[1]]);
  expect((await call('GET', '/workflows?status=running,failed&name=p-b')).body.workflows).toEqual([]);
  expect((await call('GET', '/workflows?status=running&status=cancelled&name=p-b')).body.workflows).toHaveLength(1);
  // Times are given to the millisecond and stored to the microsecond: a millisecond later is after made[2].
  const third = Date.parse((await call('GET', `/workflows/${made[2]}`)).body.workflow.created_at);
  const after = (await call('GET', `/workflows?created_after=${new Date(third + 1).toISOString()}`)).body.workflows;
  expect(after.map((w: Json) => w.id)).toEqual([made[4], made[3]]);
  for (const q of ['status=done', 'limit=0', 'limit=501', 'cursor=abc!', 'colour=red', 'limit=1&limit=2', 'name=has%20space', 'created_after=yesterday', 'created_after=0000-01-01T00:00:00Z', 'created_before=9999-12-31T23:59:59-23:59', `cursor=${Buffer.from('["2026-02-30 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}`]) {
    const r = await call('GET', `/workflows?${q}`);
    expect(r.status).toBe(400);
    expect(fields(r.body)).toEqual([q.split('=')[0]]);
  }
  for (const id of made) await call('POST', `/workflows/${id}/cancel`);
});

it('a creation window of GET /workflows is exact to the microsecond, as created_at is', async () => {
  const made: string[] = [];
  for (const name of ['w-a', 'w-b', 'w-c']) made.push((await call('POST', '/workflows', { name, tasks: [{ key: 'only', type: 'sleeper', payload: { sleep_ms: 1 } }] })).body.workflow.id);
  // Three workflows within one millisecond: .123100, .123456, .123900.
  const at = ['2026-12-05 10:00:00.1231+00', '2026-12-05 10:00:00.123456+00', '2026-12-05 10:00:00.1239+00'];
  for (const [i, id] of made.entries()) await fx.stack.pool.query('UPDATE workflows SET created_at = $2 WHERE id = $1', [id, at[i]]);
  // Workflows of the tests before are newer: only these three are counted.
  const window = async (q: string) => ((await call('GET', `/workflows?${q}`)).body.workflows as Json[]).map((w) => made.indexOf(w.id)).filter((i) => i >= 0).sort();
  expect(await window(`created_after=${encodeURIComponent('2026-12-05T10:00:00.123456Z')}`)).toEqual([2]);
  expect(await window(`created_before=${encodeURIComponent('2026-12-05T10:00:00.123456Z')}`)).toEqual([0]);
  expect(await window(`created_before=${encodeURIComponent('2026-12-05T10:00:00.1234561Z')}&created_after=${encodeURIComponent('2026-12-05T10:00:00.1231Z')}`)).toEqual([1]);
  for (const id of made) await call('POST', `/workflows/${id}/cancel`);
});

it('cancels a running workflow (200; again: 200, nothing more), not one that ended otherwise (409); an unknown id is a 404, a malformed one a 400', async () => {
  const made = await call('POST', '/workflows', diamond('to-cancel'));
  const id = made.body.workflow.id;
  const cancelled = await call('POST', `/workflows/${id}/cancel`);
  expect(cancelled.status).toBe(200);
  expect(cancelled.body).toMatchObject({ workflow: { id, status: 'cancelled', steps_unfinished: 0 }, cancelled: 4, cancelling: 0 });
  expect(cancelled.body.workflow.cancel_requested_at).not.toBeNull();
  const again = await call('POST', `/workflows/${id}/cancel`);
  expect(again.status).toBe(200);
  expect(again.body).toMatchObject({ workflow: { id, status: 'cancelled' }, cancelled: 0, cancelling: 0 });
  expect((await call('GET', `/workflows/${id}`)).body.workflow.counts).toMatchObject({ cancelled: 4, waiting: 0, queued: 0 });
  const unknown = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
  expect((await call('POST', `/workflows/${unknown}/cancel`)).status).toBe(404);
  expect((await call('GET', `/workflows/${unknown}`)).status).toBe(404);
  expect(fields((await call('GET', '/workflows/not-an-id')).body)).toEqual(['id']);
  expect((await call('POST', '/workflows/not-an-id/cancel')).status).toBe(400);
});

it('counts the steps a workflow cancel ends in tasks_cancelled_total, as a task cancel counts its task, once', async () => {
  const cancelledTotal = async (how: string) => {
    const m = (await fx.api.registry.getMetricsAsJSON()).find((x) => x.name === 'tasks_cancelled_total');
    return (m?.values ?? []).filter((v) => v.labels.how === how).reduce((n, v) => n + v.value, 0);
  };
  const before = await cancelledTotal('waiting');
  const id = (await call('POST', '/workflows', diamond('counted-cancel'))).body.workflow.id;
  expect((await call('POST', `/workflows/${id}/cancel`)).body).toMatchObject({ cancelled: 4, cancelling: 0 });
  const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE workflow_id = $1 AND status = 'cancelled'", [id]);
  expect(rows[0].n).toBe(4);
  expect((await cancelledTotal('waiting')) - before).toBe(4);
  // Cancelling it again changes nothing, and counts nothing.
  await call('POST', `/workflows/${id}/cancel`);
  expect((await cancelledTotal('waiting')) - before).toBe(4);
});

it('a workflow cancel that fails part way counts the steps it cancelled before the failure', async () => {
  const id = (await call('POST', '/workflows', { name: 'half-cancelled', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }] })).body.workflow.id;
  // An api whose read of the queued and running steps fails, as a Postgres blip would, after the
  // waiting step's cancel committed.
  const pool = new Proxy(fx.stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? (config: unknown, values?: unknown[]) =>
            typeof config === 'string' && config.includes('cancel_requested_at IS NULL ORDER BY id LIMIT')
              ? Promise.reject(Object.assign(new Error('connection terminated'), { code: '57P01' }))
              : target.query(config as never, values as never)
        : Reflect.get(target, prop, receiver),
  });
  const registry = createRegistry('api');
  const app = createApp({ pool, queue: fx.stack.queue, log: silentLog, metrics: apiMetrics(registry), maxBodyBytes: 1 << 20, defaultMaxRetries: 3, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0');
  try {
    expect((await call('POST', `/workflows/${id}/cancel`, undefined, {}, `http://127.0.0.1:${server.address.port}`)).status).toBe(503);
  } finally {
    await server.stop();
  }
  const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE workflow_id = $1 AND status = 'cancelled'", [id]);
  expect(rows[0].n).toBe(1);
  const counted = (await registry.getMetricsAsJSON()).find((m) => m.name === 'tasks_cancelled_total')!.values.reduce((n, v) => n + v.value, 0);
  expect(counted).toBe(1);
});

it("keeps tenants apart: another tenant's workflow is a 404 to read or cancel, and never listed", async () => {
  const theirs = await call('POST', '/workflows?tenant=gamma', diamond('theirs'));
  expect(theirs.status).toBe(201);
  expect(theirs.body.workflow.tenant).toBe('gamma');
  const id = theirs.body.workflow.id;
  expect((await call('GET', `/workflows/${id}`)).status).toBe(404);
  expect((await call('POST', `/workflows/${id}/cancel`)).status).toBe(404);
  expect((await call('GET', '/workflows?name=theirs')).body.workflows).toEqual([]);
  expect((await call('GET', `/workflows/${id}?tenant=gamma`)).body.workflow.tenant).toBe('gamma');
  expect((await call('POST', `/workflows/${id}/cancel?tenant=gamma`)).status).toBe(200);
});

it('runs to the end with a worker: succeeded, every step counted, finished_at set', async () => {
  const { worker } = startWorker(fx.stack);
  try {
    const id = (await call('POST', '/workflows', diamond('runs'))).body.workflow.id;
    const done = await waitFor(async () => {
      const r = await call('GET', `/workflows/${id}`);
      return r.body.workflow.status === 'running' ? null : r.body;
    }, 20_000, 'the workflow to finish');
    expect(done.workflow).toMatchObject({ status: 'succeeded', steps_unfinished: 0, steps_failed: 0, counts: { succeeded: 4, waiting: 0 } });
    expect(done.workflow.finished_at).not.toBeNull();
    expect(done.steps.every((s: Json) => s.status === 'succeeded' && s.attempts === 1 && s.started_at && s.finished_at)).toBe(true);
    const refused = await call('POST', `/workflows/${id}/cancel`);
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toBe(`workflow ${id} is succeeded already; only a running workflow can be cancelled`);
  } finally {
    await (worker as Worker).stop(0);
  }
});

it(`takes ${MAX_WORKFLOW_STEPS} steps in one body (a chain), and refuses a body over MAX_WORKFLOW_BODY_BYTES with a 413`, async () => {
  const tasks = Array.from({ length: MAX_WORKFLOW_STEPS }, (_, i) => ({ key: `step-${i}`, type: 'noop', ...(i ? { depends_on: [`step-${i - 1}`] } : {}) }));
  const made = await call('POST', '/workflows', { name: 'long', tasks });
  expect(made.status).toBe(201);
  expect(made.body.steps).toHaveLength(MAX_WORKFLOW_STEPS);
  expect((await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks WHERE workflow_id = $1', [made.body.workflow.id])).rows[0].n).toBe(MAX_WORKFLOW_STEPS);
  const got = await call('GET', `/workflows/${made.body.workflow.id}`);
  expect(got.body.workflow.counts).toMatchObject({ queued: 1, waiting: MAX_WORKFLOW_STEPS - 1 });
  expect(got.body.steps[MAX_WORKFLOW_STEPS - 1]).toMatchObject({ key: `step-${MAX_WORKFLOW_STEPS - 1}`, depends_on: [`step-${MAX_WORKFLOW_STEPS - 2}`] });
  const big = { name: 'big', tasks: [{ key: 'a', type: 'noop', payload: { text: 'x'.repeat(fx.stack.cfg.MAX_WORKFLOW_BODY_BYTES) } }] };
  expect((await call('POST', '/workflows', big)).status).toBe(413);
}, 120_000);

it('the typed client: submit with a generated idempotency key (sent again: the same workflow), get, list every page, cancel twice', async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url, tenant: 'client-t' });
  const first = await client.submitWorkflow(diamond('by-client'));
  expect(first.created).toBe(true);
  expect(first.workflow.idempotency_key).toMatch(/^client-[0-9a-f-]{36}$/);
  expect(first.steps.map((s) => s.key)).toEqual(['extract', 'clean', 'stats', 'load']);
  const again = await client.submitWorkflow(diamond('by-client'), { idempotencyKey: first.workflow.idempotency_key! });
  expect(again).toEqual({ ...first, created: false });
  for (const name of ['by-client-2', 'by-client-3']) await client.submitWorkflow(diamond(name));

  const detail = await client.getWorkflow(first.workflow.id);
  expect(detail.workflow.counts.waiting).toBe(3);
  expect(detail.steps[3]!.depends_on).toEqual(['clean', 'stats']);
  const pages: number[] = [];
  const names: string[] = [];
  for await (const page of client.listWorkflows({ limit: 1, status: ['running'] })) {
    pages.push(page.workflows.length);
    names.push(...page.workflows.map((w) => w.name));
  }
  expect(names).toEqual(['by-client-3', 'by-client-2', 'by-client']);
  expect(pages.length).toBeGreaterThanOrEqual(3);

  const cancelled = await client.cancelWorkflow(first.workflow.id);
  expect(cancelled).toMatchObject({ workflow: { status: 'cancelled' }, cancelled: 4, cancelling: 0 });
  expect(await client.cancelWorkflow(first.workflow.id)).toMatchObject({ cancelled: 0, cancelling: 0 });
  const missing = await client.getWorkflow('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b').catch((err: unknown) => err);
  expect(missing).toBeInstanceOf(ApiError);
  expect((missing as ApiError).status).toBe(404);
});

describe('under tenant limits', () => {
  let server: RunningServer;
  let url: string;
  let registry: Registry;
  beforeAll(async () => {
    registry = createRegistry('api');
    const metrics = apiMetrics(registry);
    const admission = new RequestAdmission({
      cache: new TenantCache(fx.stack.pool, 0),
      admission: new TenantAdmission(fx.stack.redis, fx.stack.cfg.REDIS_KEY_PREFIX),
      env: { TENANT_RATE_LIMIT: 0, TENANT_BURST: 0, TENANT_MAX_UNFINISHED: 0 },
      log: silentLog,
      metrics,
      tenantLabels: new TenantLabels(2),
    });
    server = await startServer(createApp({ pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, metrics, maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, admission }), '127.0.0.1:0');
    url = `http://127.0.0.1:${server.address.port}`;
  });
  afterAll(async () => server.stop());

  it('admits a workflow as a batch of as many tasks as it has steps: whole, or refused whole with a 429', async () => {
    await setTenant(fx.stack.pool, 'limited', { rate_limit: 1, burst: 5 });
    await setTenant(fx.stack.pool, 'limited-big', { rate_limit: 1, burst: 5 });
    // Larger than the burst, it cannot be sent apart: admitted on a full bucket, which it leaves owing.
    const big = await call('POST', '/workflows?tenant=limited-big', { name: 'six', tasks: Array.from({ length: 6 }, (_, i) => ({ key: `s${i}`, type: 'noop' })) }, {}, url);
    expect(big.status).toBe(201);
    const owing = await call('POST', '/workflows?tenant=limited-big', diamond('owing'), {}, url);
    expect(owing.status).toBe(429);
    expect(fields(owing.body)).toEqual(['rate_limit']);
    const fits = await call('POST', '/workflows?tenant=limited', diamond('fits'), {}, url);
    expect(fits.status).toBe(201);
    expect(fits.headers.get('ratelimit')).toMatch(/^"tasks";r=1;/);
    const over = await call('POST', '/workflows?tenant=limited', diamond('over'), {}, url);
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await fx.stack.pool.query("SELECT count(*)::int AS n FROM workflows WHERE tenant = 'limited'")).rows[0].n).toBe(1);
  });
});
