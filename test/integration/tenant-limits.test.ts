/**
 * Per-tenant rate limits and the unfinished-task cap, through the HTTP API against real Postgres
 * and Redis: 429 with Retry-After and the RateLimit headers, whole batches admitted or refused,
 * quota places given back by replays and by finished tasks (true-up), defaults from the environment.
 */
import type { Registry } from 'prom-client';
import { RequestAdmission } from '../../services/api/limits/request-admission';
import { UnfinishedTrueUp } from '../../services/api/limits/unfinished-true-up';
import type { RunningServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { TenantLabels } from '../../services/core/observability/tenant-labels';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import type { LimitDefaults } from '../../services/core/tenancy/limits';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createApp } from '../../services/api/app';
import { startServer } from '../../services/api/server';
import { Authenticator } from '../../services/api/auth/authenticator';
import { createKey } from '../../services/core/tenancy/key-store';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

let stack: Stack;
let server: RunningServer;
let url: string;
let registry: Registry;
let trueUp: UnfinishedTrueUp;
let auth: Authenticator;
const env: LimitDefaults = { TENANT_RATE_LIMIT: 0, TENANT_BURST: 0, TENANT_MAX_UNFINISHED: 0 };
const keys = new Map<string, string>();

beforeAll(async () => {
  stack = await createStack();
  registry = createRegistry('api');
  const metrics = apiMetrics(registry);
  const tenantAdmission = new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX);
  // A cache that re-reads at once, so a changed limit applies to the next request.
  const admission = new RequestAdmission({ cache: new TenantCache(stack.pool, 0), admission: tenantAdmission, env, log: silentLog, metrics, tenantLabels: new TenantLabels(2) });
  trueUp = new UnfinishedTrueUp({ pool: stack.pool, admission: tenantAdmission, lock: stack.queue, envCap: 0 }, 60_000, silentLog);
  auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: 500, log: silentLog });
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics, maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, auth, admission });
  server = await startServer(app, '127.0.0.1:0');
  url = `http://127.0.0.1:${server.address.port}`;
});
afterAll(async () => {
  await server.stop();
  await auth.close();
  await stack.close();
});

async function keyOf(tenant: string): Promise<string> {
  if (!keys.has(tenant)) keys.set(tenant, (await createKey(stack.pool, { tenant, scopes: ['tasks:write', 'tasks:read'], expiresInMs: null })).key);
  return keys.get(tenant)!;
}
async function post(tenant: string, body: unknown, path = '/tasks', headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await keyOf(tenant)}`, ...headers }, body: JSON.stringify(body) });
}
const tasksOf = async (tenant: string) => (await stack.pool.query('SELECT count(*)::int AS n FROM tasks WHERE tenant = $1', [tenant])).rows[0].n as number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate limit', () => {
  it('admits the burst, then answers 429 with Retry-After and the RateLimit headers, and refills at the rate', async () => {
    await keyOf('rl');
    await setTenant(stack.pool, 'rl', { rate_limit: 1, burst: 10 });
    // A bucket refills while requests are sent: what may pass beyond the burst is bounded by the time taken.
    const send = async (n: number) => {
      const t0 = Date.now();
      const answers: Response[] = [];
      for (let i = 0; i < n; i++) answers.push(await post('rl', { type: 'noop' }));
      return { answers, refill: Math.ceil((Date.now() - t0) / 1000) };
    };
    const { answers, refill } = await send(14);
    const statuses = answers.map((r) => r.status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(201));
    expect(statuses.filter((s) => s === 201).length).toBeLessThanOrEqual(10 + refill);
    expect(statuses.every((s) => s === 201 || s === 429)).toBe(true);
    expect(answers[0]!.headers.get('ratelimit-policy')).toBe('"tasks";q=10;w=10');
    expect(answers[0]!.headers.get('ratelimit')).toMatch(/^"tasks";r=9;t=\d+$/);
    const refused = answers.find((r) => r.status === 429)!;
    expect(refused).toBeDefined();
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('ratelimit')).toMatch(/^"tasks";r=0;t=1$/);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await refused.json()) as { status: number; errors: { field: string }[] };
    expect(problem.status).toBe(429);
    expect(problem.errors[0]!.field).toBe('rate_limit');
    const created = await tasksOf('rl');
    expect(created).toBe(statuses.filter((s) => s === 201).length);
    await sleep(2100);
    const later = await send(6);
    const admitted = later.answers.filter((r) => r.status === 201).length;
    // About two seconds at 1 per second: 2 (or 3 with a partial token), plus what refilled meanwhile; never the burst again.
    expect(admitted).toBeGreaterThanOrEqual(2);
    expect(admitted).toBeLessThanOrEqual(3 + later.refill);
  });

  it('admits a batch whole or refuses it whole; a batch larger than the burst can never pass', async () => {
    await keyOf('rlb');
    await setTenant(stack.pool, 'rlb', { rate_limit: 1, burst: 5 });
    expect((await post('rlb', { tasks: [{ type: 'noop' }, { type: 'noop' }, { type: 'noop' }] }, '/tasks/batch')).status).toBe(200);
    const refused = await post('rlb', { tasks: [{ type: 'noop' }, { type: 'noop' }, { type: 'noop' }] }, '/tasks/batch');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await tasksOf('rlb')).toBe(3);
    const tooBig = await post('rlb', { tasks: Array.from({ length: 6 }, () => ({ type: 'noop' })) }, '/tasks/batch');
    expect(tooBig.status).toBe(429);
    expect(((await tooBig.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('burst');
    expect(await tasksOf('rlb')).toBe(3);
  });

  it('a workflow larger than the burst is admitted on a full bucket and leaves it owing; one on a bucket not full waits', async () => {
    await keyOf('rlw');
    await setTenant(stack.pool, 'rlw', { rate_limit: 1, burst: 3 });
    const steps = (n: number, name: string) => ({ name, tasks: Array.from({ length: n }, (_, i) => ({ key: `s${i}`, type: 'noop' })) });
    const big = await post('rlw', steps(5, 'big'), '/workflows');
    expect(big.status).toBe(201);
    // The bucket owes 2: nothing passes until it has refilled past zero, and Retry-After says so.
    const next = await post('rlw', { type: 'noop' });
    expect(next.status).toBe(429);
    expect(Number(next.headers.get('retry-after'))).toBeGreaterThanOrEqual(3);
    const again = await post('rlw', steps(5, 'again'), '/workflows');
    expect(again.status).toBe(429);
    expect(((await again.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('rate_limit');
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThanOrEqual(4);
    expect(await tasksOf('rlw')).toBe(5);
  });

  it("a step's retry that reopens more steps than the burst passes on a full bucket, alone or as a bulk retry of one", async () => {
    await keyOf('rlr');
    await setTenant(stack.pool, 'rlr', { rate_limit: 0 });
    const made = (await (await post('rlr', { name: 'r', tasks: [{ key: 'a', type: 'wa' }, ...['b', 'c', 'd'].map((key) => ({ key, type: 'noop', depends_on: ['a'] }))] }, '/workflows')).json()) as { steps: { task_id: string }[] };
    const a = made.steps[0]!.task_id;
    const statusOfA = async () => (await stack.pool.query('SELECT status::text FROM tasks WHERE id = $1', [a])).rows[0].status as string;
    expect((await post('rlr', {}, `/tasks/${a}/cancel`)).status).toBe(200);
    await setTenant(stack.pool, 'rlr', { rate_limit: 10, burst: 2 });
    // a and the three steps it reopens: four, past the burst of two.
    expect((await post('rlr', {}, `/tasks/${a}/retry`)).status).toBe(200);
    expect(await statusOfA()).toBe('queued');
    expect((await post('rlr', {}, `/tasks/${a}/cancel`)).status).toBe(200);
    await sleep(700);
    const bulk = await post('rlr', { filter: { status: 'cancelled', type: 'wa' }, limit: 1 }, '/tasks/retry');
    expect(bulk.status).toBe(200);
    expect(await statusOfA()).toBe('queued');
  });

  it('more tasks than max_unfinished can never pass: 429 without Retry-After', async () => {
    await keyOf('qw');
    await setTenant(stack.pool, 'qw', { max_unfinished: 2 });
    await trueUp.runOnce();
    const res = await post('qw', { name: 'w', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop' }, { key: 'c', type: 'noop' }] }, '/workflows');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(((await res.json()) as { detail: string }).detail).toMatch(/can never be admitted/);
    expect((await post('qw', { tasks: [{ type: 'noop' }, { type: 'noop' }] }, '/tasks/batch')).status).toBe(200);
  });

  it("one tenant's limit does not touch another tenant", async () => {
    await keyOf('rl-noisy');
    await setTenant(stack.pool, 'rl-noisy', { rate_limit: 1, burst: 1 });
    expect((await post('rl-noisy', { type: 'noop' })).status).toBe(201);
    expect((await post('rl-noisy', { type: 'noop' })).status).toBe(429);
    const quiet = await post('rl-quiet', { type: 'noop' });
    expect(quiet.status).toBe(201);
    expect(quiet.headers.get('ratelimit-policy')).toBeNull();
  });

  it('the environment default applies to tenants without their own; "default" (NULL) returns to it', async () => {
    // One token a second, two at once: a refill takes a second, longer than these calls take on a
    // busy machine (with 2 a second, half a second between two calls let a third through).
    env.TENANT_RATE_LIMIT = 1;
    env.TENANT_BURST = 2;
    try {
      await keyOf('rl-env');
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post('rl-env', { type: 'noop' })).status);
      expect(statuses).toEqual([201, 201, 429, 429]);
      await setTenant(stack.pool, 'rl-env', { rate_limit: 0 });
      expect((await post('rl-env', { type: 'noop' })).status).toBe(201);
      await setTenant(stack.pool, 'rl-env', { rate_limit: null });
      expect((await post('rl-env', { type: 'noop' })).status).toBe(429);
    } finally {
      env.TENANT_RATE_LIMIT = 0;
      env.TENANT_BURST = 0;
    }
  });

  it('counts refused tasks per tenant, with a bounded label set', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/tasks_rate_limited_total\{tenant="rl",service="api"\} [1-9]\d*\n/);
    // 3 refused by the rate, then 6 by the burst.
    expect(text).toMatch(/tasks_rate_limited_total\{tenant="rlb",service="api"\} 9\n/);
    // TenantLabels(2): later tenants with refusals are counted as _other.
    expect(text).toMatch(/tasks_rate_limited_total\{tenant="_other",service="api"\} \d+/);
    expect(text).not.toMatch(/tenant="rl-noisy"/);
  });
});

describe('rate limit and the clock of Redis', () => {
  it("a bucket dated ahead of Redis's clock (it ran ahead, and was set back) refills from now, not once the clock catches up", async () => {
    await keyOf('rl-clock');
    await setTenant(stack.pool, 'rl-clock', { rate_limit: 20, burst: 1 });
    expect((await post('rl-clock', { type: 'noop' })).status).toBe(201);
    // As an admission left it while Redis's clock ran a day ahead (or on a master failed over from):
    // no token left, dated a day from now.
    const [sec] = await stack.inspect.time();
    await stack.inspect.hset(`{${stack.cfg.REDIS_KEY_PREFIX}}:tenant:bucket`, 'rl-clock:t', '0', 'rl-clock:at', String((Number(sec) + 86_400) * 1000));
    // Before: nothing refilled until the clock reached that date (a day of 429s); now a token comes within 1/20 s.
    await waitFor(async () => (await post('rl-clock', { type: 'noop' })).status === 201, 10_000, 'a token to refill');
  });
});

describe('max_unfinished', () => {
  it('caps unfinished tasks (429 naming the quota); batches whole; replays take no place', async () => {
    await keyOf('q');
    await setTenant(stack.pool, 'q', { max_unfinished: 5 });
    await trueUp.runOnce();
    const first = await post('q', { type: 'noop' }, '/tasks', { 'idempotency-key': 'q-1' });
    expect(first.status).toBe(201);
    // A replay of the same request creates nothing and takes no place.
    for (let i = 0; i < 3; i++) expect((await post('q', { type: 'noop' }, '/tasks', { 'idempotency-key': 'q-1' })).status).toBe(200);
    expect((await post('q', { tasks: [{ type: 'noop' }, { type: 'noop' }, { type: 'noop' }] }, '/tasks/batch')).status).toBe(200);
    const tooMany = await post('q', { tasks: [{ type: 'noop' }, { type: 'noop' }] }, '/tasks/batch');
    expect(tooMany.status).toBe(429);
    expect((await post('q', { type: 'noop' })).status).toBe(201);
    const refused = await post('q', { type: 'noop' });
    expect(refused.status).toBe(429);
    const problem = (await refused.json()) as { title: string; detail: string; errors: { field: string }[] };
    expect(problem.title).toBe('Quota exceeded');
    expect(problem.errors[0]!.field).toBe('max_unfinished');
    expect(problem.detail).toMatch(/5 unfinished tasks; max_unfinished is 5/);
    expect(await tasksOf('q')).toBe(5);
  });

  it('a replay is answered at the cap (200, the same task; a changed body 409); a new request is refused', async () => {
    await keyOf('replay-t');
    await setTenant(stack.pool, 'replay-t', { max_unfinished: 2 });
    await trueUp.runOnce();
    const first = await post('replay-t', { type: 'noop', payload: { n: 1 } }, '/tasks', { 'idempotency-key': 'rq-1' });
    const batch = await post('replay-t', { tasks: [{ type: 'noop', idempotency_key: 'rq-2' }] }, '/tasks/batch');
    expect([first.status, batch.status]).toEqual([201, 200]);
    const wfTenant = await post('replay-t', { name: 'w', tasks: [{ key: 'a', type: 'noop' }] }, '/workflows', { 'idempotency-key': 'rq-wf' });
    expect(wfTenant.status).toBe(429);
    // At the cap: the same requests again are their replays.
    const again = await post('replay-t', { type: 'noop', payload: { n: 1 } }, '/tasks', { 'idempotency-key': 'rq-1' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
    const batchAgain = await post('replay-t', { tasks: [{ type: 'noop', idempotency_key: 'rq-2' }, { type: 'noop', idempotency_key: 'rq-1', payload: { n: 1 } }] }, '/tasks/batch');
    expect(batchAgain.status).toBe(200);
    expect(((await batchAgain.json()) as { results: { status: number }[] }).results.map((r) => r.status)).toEqual([200, 200]);
    expect((await post('replay-t', { type: 'noop', payload: { n: 2 } }, '/tasks', { 'idempotency-key': 'rq-1' })).status).toBe(409);
    // Anything new is refused: a new key, no key, or a batch holding one new request among replays.
    expect((await post('replay-t', { type: 'noop' }, '/tasks', { 'idempotency-key': 'rq-3' })).status).toBe(429);
    expect((await post('replay-t', { type: 'noop' })).status).toBe(429);
    expect((await post('replay-t', { tasks: [{ type: 'noop', idempotency_key: 'rq-2' }, { type: 'noop', idempotency_key: 'rq-4' }] }, '/tasks/batch')).status).toBe(429);
    expect(await tasksOf('replay-t')).toBe(2);
  });

  it('a workflow replay is answered at the cap', async () => {
    await keyOf('replay-w');
    await setTenant(stack.pool, 'replay-w', { max_unfinished: 2 });
    await trueUp.runOnce();
    const body = { name: 'w', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }] };
    const made = await post('replay-w', body, '/workflows', { 'idempotency-key': 'rw-1' });
    expect(made.status).toBe(201);
    const again = await post('replay-w', body, '/workflows', { 'idempotency-key': 'rw-1' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { workflow: { id: string } }).workflow.id).toBe(((await made.json()) as { workflow: { id: string } }).workflow.id);
    expect((await post('replay-w', body, '/workflows', { 'idempotency-key': 'rw-2' })).status).toBe(429);
  });

  it('finished tasks free their places at the next true-up', async () => {
    await stack.pool.query("UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE tenant = 'q' AND id IN (SELECT id FROM tasks WHERE tenant = 'q' LIMIT 2)");
    expect((await post('q', { type: 'noop' })).status).toBe(429);
    await trueUp.runOnce();
    expect((await post('q', { type: 'noop' })).status).toBe(201);
    expect((await post('q', { type: 'noop' })).status).toBe(201);
    expect((await post('q', { type: 'noop' })).status).toBe(429);
    expect(await registry.metrics()).toMatch(/tasks_quota_refused_total\{tenant="_other",quota="max_unfinished",service="api"\} \d+/);
  });

  it('a tenant whose unfinished tasks all ended counts 0 at the next true-up, though it was never admitted under a cap', async () => {
    // Another tenant's cap makes the true-up count everyone.
    await setTenant(stack.pool, 'cap-holder', { max_unfinished: 100 });
    for (let i = 0; i < 5; i++) expect((await post('stale', { type: 'noop' })).status).toBe(201);
    await trueUp.runOnce();
    await stack.pool.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE tenant = 'stale'");
    await trueUp.runOnce();
    await setTenant(stack.pool, 'stale', { max_unfinished: 3 });
    for (let i = 0; i < 3; i++) expect((await post('stale', { type: 'noop' })).status).toBe(201);
    expect((await post('stale', { type: 'noop' })).status).toBe(429);
  });

  it('a tenant without limits costs no Redis key', async () => {
    expect((await post('free', { type: 'noop' })).status).toBe(201);
    const bucket = await stack.inspect.hget(`{${stack.cfg.REDIS_KEY_PREFIX}}:tenant:bucket`, 'free:t');
    const admitted = await stack.inspect.hget(`{${stack.cfg.REDIS_KEY_PREFIX}}:tenant:admitted`, 'free');
    expect([bucket, admitted]).toEqual([null, null]);
  });
});

describe('retries are admitted like submissions', () => {
  type Json = Record<string, unknown>;
  const statusOf = async (id: string) => (await stack.pool.query('SELECT status::text AS s FROM tasks WHERE id = $1', [id])).rows[0].s as string;
  const unfinishedOf = async (tenant: string) => (await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = $1 AND status IN ('waiting', 'queued', 'running', 'retrying', 'scheduled')", [tenant])).rows[0].n as number;
  /** The places admission counts as taken (admission.ts: the count at the last true-up + admitted since). */
  const placesOf = async (tenant: string) => {
    const tag = `{${stack.cfg.REDIS_KEY_PREFIX}}`;
    const [admitted, base, atBase] = await Promise.all(['admitted', 'unfinished', 'admitted_at_count'].map((k) => stack.inspect.hget(`${tag}:tenant:${k}`, tenant)));
    return Number(base ?? 0) + Number(admitted ?? 0) - Number(atBase ?? 0);
  };
  const created = async (tenant: string, type = 'noop') => ((await (await post(tenant, { type })).json()) as Json).id as string;
  const cancelled: string[] = [];

  it('at the cap: a single and a bulk retry answer 429 as a submission does, and change nothing', async () => {
    await keyOf('rq');
    await setTenant(stack.pool, 'rq', { max_unfinished: 2 });
    await trueUp.runOnce();
    for (let i = 0; i < 2; i++) cancelled.push(await created('rq'));
    for (const id of cancelled) expect((await post('rq', {}, `/tasks/${id}/cancel`)).status).toBe(200);
    await trueUp.runOnce();
    expect((await post('rq', { type: 'noop' })).status).toBe(201);
    expect((await post('rq', { type: 'noop' })).status).toBe(201);
    expect((await post('rq', { type: 'noop' })).status).toBe(429);

    const one = await post('rq', {}, `/tasks/${cancelled[0]}/retry`);
    expect(one.status).toBe(429);
    expect(one.headers.get('retry-after')).toBe('1');
    expect(one.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await one.json()) as { title: string; errors: { field: string }[] };
    expect(problem.title).toBe('Quota exceeded');
    expect(problem.errors[0]!.field).toBe('max_unfinished');

    const bulk = await post('rq', { filter: { status: 'cancelled' } }, '/tasks/retry');
    expect(bulk.status).toBe(429);
    expect(((await bulk.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('max_unfinished');
    // A dry run changes nothing and needs no admission.
    const dry = await post('rq', { filter: { status: 'cancelled' }, dry_run: true }, '/tasks/retry');
    expect(dry.status).toBe(200);
    expect(await dry.json()).toMatchObject({ matched: 2, changed: 0, dry_run: true });

    expect(await Promise.all(cancelled.map(statusOf))).toEqual(['cancelled', 'cancelled']);
    expect(await unfinishedOf('rq')).toBe(2);
    expect(await placesOf('rq')).toBe(2);
  });

  it('within the cap a retry succeeds and takes its place; a cancel needs none', async () => {
    // Cancelling the two unfinished ones frees their places at the true-up.
    const { rows } = await stack.pool.query<{ id: string }>("SELECT id::text FROM tasks WHERE tenant = 'rq' AND status = 'queued'");
    for (const { id } of rows) expect((await post('rq', {}, `/tasks/${id}/cancel`)).status).toBe(200);
    await trueUp.runOnce();
    expect(await placesOf('rq')).toBe(0);
    expect((await post('rq', {}, `/tasks/${cancelled[0]}/retry`)).status).toBe(200);
    expect(await statusOf(cancelled[0]!)).toBe('queued');
    expect(await placesOf('rq')).toBe(1);
    const bulk = await post('rq', { filter: { status: 'cancelled' }, limit: 1 }, '/tasks/retry');
    expect(bulk.status).toBe(200);
    expect(await bulk.json()).toMatchObject({ changed: 1, has_more: true });
    expect(await placesOf('rq')).toBe(2);
    expect(await unfinishedOf('rq')).toBe(2);
    expect((await post('rq', { type: 'noop' })).status).toBe(429);
    // A retry of a task that cannot be retried needs no place: its 409 is answered at the cap too.
    expect((await post('rq', {}, `/tasks/${cancelled[0]}/retry`)).status).toBe(409);
  });

  it('under a rate limit a bulk retry costs a token per task it would retry', async () => {
    await keyOf('rr');
    await setTenant(stack.pool, 'rr', { rate_limit: 1, burst: 3 });
    const ids = [await created('rr'), await created('rr'), await created('rr')];
    for (const id of ids) expect((await post('rr', {}, `/tasks/${id}/cancel`)).status).toBe(200);
    const refused = await post('rr', { filter: { status: 'cancelled' } }, '/tasks/retry');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit')).toMatch(/^"tasks";r=0;t=\d+$/);
    expect(await Promise.all(ids.map(statusOf))).toEqual(['cancelled', 'cancelled', 'cancelled']);
  });

  it("a step's retry counts the steps it reopens, and gives back those it cancels again", async () => {
    await keyOf('rw');
    await setTenant(stack.pool, 'rw', { max_unfinished: 3 });
    // c depends on a and b; with on_failure continue, cancelling a cancels c (by a) and cancelling b leaves c so.
    const made = (await (await post('rw', { name: 'r', on_failure: 'continue', tasks: [{ key: 'a', type: 'wa' }, { key: 'b', type: 'wb' }, { key: 'c', type: 'noop', depends_on: ['a', 'b'] }] }, '/workflows')).json()) as { steps: { task_id: string }[] };
    const [a, b, c] = made.steps.map((s) => s.task_id);
    for (const id of [a, b]) expect((await post('rw', {}, `/tasks/${id}/cancel`)).status).toBe(200);
    expect(await statusOf(c!)).toBe('cancelled');
    await trueUp.runOnce();
    for (let i = 0; i < 2; i++) expect((await post('rw', { type: 'noop' })).status).toBe(201);
    // a and the c its retry would reopen: two places, one free.
    expect((await post('rw', {}, `/tasks/${a}/retry`)).status).toBe(429);
    expect(await statusOf(a!)).toBe('cancelled');
    const { rows } = await stack.pool.query<{ id: string }>("SELECT id::text FROM tasks WHERE tenant = 'rw' AND type = 'noop' AND workflow_id IS NULL");
    for (const { id } of rows) expect((await post('rw', {}, `/tasks/${id}/cancel`)).status).toBe(200);
    await trueUp.runOnce();
    // Admitted for a and c (2); c is cancelled again (b still is): one place given back.
    const bulk = await post('rw', { filter: { status: 'cancelled', type: 'wa' } }, '/tasks/retry');
    expect(bulk.status).toBe(200);
    expect(await bulk.json()).toMatchObject({ matched: 1, changed: 1 });
    expect([await statusOf(a!), await statusOf(c!)]).toEqual(['queued', 'cancelled']);
    expect(await placesOf('rw')).toBe(1);
    // Retrying b reopens c (both dependencies now retried): two places, which fit.
    expect((await post('rw', {}, `/tasks/${b}/retry`)).status).toBe(200);
    expect(await statusOf(c!)).toBe('waiting');
    expect(await placesOf('rw')).toBe(3);
    expect(await unfinishedOf('rw')).toBe(3);
    expect((await post('rw', { type: 'noop' })).status).toBe(429);
  });
});

describe('schedule triggers are admitted like submissions', () => {
  it('a trigger of a schedule the tenant does not have is a 404 at its limits too, and takes nothing from them', async () => {
    await keyOf('trig');
    await setTenant(stack.pool, 'trig', { rate_limit: 1, burst: 1, max_unfinished: 1 });
    await trueUp.runOnce();
    expect((await post('trig', { name: 'real', cron: '@yearly', task: { type: 'noop' } }, '/schedules')).status).toBe(201);
    // Before: the missing schedule's trigger took the bucket's one token (its answer a 404 all the same)...
    expect((await post('trig', {}, '/schedules/nope/trigger')).status).toBe(404);
    expect((await post('trig', {}, '/schedules/real/trigger')).status).toBe(201);
    // ...and at the limits it was refused 429 (no token, no place) for a schedule that does not exist.
    const missing = await post('trig', {}, '/schedules/nope/trigger');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { detail: string }).detail).toBe('no schedule named nope');
    expect((await post('trig', {}, '/schedules/real/trigger')).status).toBe(429);
    expect(await tasksOf('trig')).toBe(1);
  });
});
