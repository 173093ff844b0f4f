/**
 * A request's failure changes no other request's answer and creates nothing: a coalesced batch and
 * a /tasks/batch are stored all or nothing, so a failure after part of them was written cannot
 * leave tasks nobody was told about, or turn a key's first use into a replay. Failures are real
 * Postgres errors, raised by a trigger on payloads marked `explode`.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { SubmitCoalescer } from '../../services/core/tasks/submit-coalescer';
import { storeTasks, SubmitRequest, SubmitResult } from '../../services/core/tasks/submit';
import { canonicalJson } from '../../services/api/validation';
import { createStack, silentLog, Stack, startApi } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
  await stack.pool.query(`
    CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'exploding task'; END $$;
    CREATE TRIGGER explode BEFORE INSERT ON tasks FOR EACH ROW WHEN (NEW.payload ? 'explode') EXECUTE FUNCTION explode();`);
});
afterEach(async () => {
  await stack.close();
});

function req(payload: Record<string, unknown>, key: string | null = null): SubmitRequest {
  const r = { type: 'noop', priority: 'default' as const, payload, maxRetries: 0 };
  return { ...r, tenant: 'default', idempotencyKey: key, canonical: key === null ? '' : canonicalJson({ ...r, max_retries: 0 }), payloadJson: JSON.stringify(payload) };
}

const count = async (pool: Pool, where = 'true') => (await pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where}`)).rows[0].n as number;
const settle = <T>(p: Promise<T>) => p.then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e }));

it('a coalesced batch that fails creates nothing: each request then gets its own answer, keyless ones once, a first key use a 201', async () => {
  const coalescer = new SubmitCoalescer({ pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 }, { maxBatch: 500, maxConcurrent: 1, isOutage: () => false });
  // The first request goes alone at once; those submitted while it is in Postgres go together next.
  const held = coalescer.submit(req({ first: true }, 'held'));
  // These wait together, then go as one batch: keyless requests, a key used twice (its second use
  // the same request), and a request Postgres refuses.
  const keyless = Array.from({ length: 40 }, (_, i) => settle(coalescer.submit(req({ marker: i }))));
  const firstUse = settle(coalescer.submit(req({ k: 1 }, 'k')));
  const secondUse = settle(coalescer.submit(req({ k: 1 }, 'k')));
  const bad = settle(coalescer.submit(req({ explode: true }, 'k2')));
  await held;

  const answers = await Promise.all(keyless);
  expect(answers.every((a) => a.ok && a.v.kind === 'created')).toBe(true);
  const first = await firstUse;
  const second = await secondUse;
  expect(first.ok && first.v.kind).toBe('created');
  expect(second.ok && second.v.kind).toBe('replayed');
  expect(first.ok && second.ok && (second.v as Extract<SubmitResult, { kind: 'replayed' }>).task.id).toBe(first.ok && (first.v as Extract<SubmitResult, { kind: 'created' }>).task.id);
  expect((await bad).ok).toBe(false);

  for (let i = 0; i < 40; i++) expect(await count(stack.pool, `payload->>'marker' = '${i}'`)).toBe(1);
  expect(await count(stack.pool)).toBe(1 + 40 + 1);
  await coalescer.settled();
});

it('a key used twice in a coalesced batch is resolved within it: a statement Postgres would refuse for the second use never runs, and nothing is written twice', async () => {
  // Postgres refuses the second use's key claim (a BEFORE INSERT trigger fires even when the row
  // would conflict): a batch written in rounds committed its first round, failed its second and
  // wrote everything again one by one.
  const second = req({ k: 'other body' }, 'k');
  const hash = createHash('sha256').update(second.canonical).digest('hex');
  await stack.pool.query(`
    CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'poisoned key claim'; END $$;
    CREATE TRIGGER poison BEFORE INSERT ON idempotency_keys FOR EACH ROW WHEN (NEW.request_hash = '${hash}') EXECUTE FUNCTION poison();`);
  const coalescer = new SubmitCoalescer({ pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 }, { maxBatch: 500, maxConcurrent: 1, isOutage: () => false });
  // The first request goes alone at once; those submitted while it is in Postgres go together next.
  const held = coalescer.submit(req({ first: true }, 'held'));
  const keyless = Array.from({ length: 40 }, (_, i) => coalescer.submit(req({ marker: i })));
  const firstUse = coalescer.submit(req({ k: 1 }, 'k'));
  const secondUse = coalescer.submit(second);
  await held;
  expect((await Promise.all(keyless)).map((r) => r.kind)).toEqual(Array(40).fill('created'));
  expect((await firstUse).kind).toBe('created');
  expect((await secondUse).kind).toBe('conflict');
  for (let i = 0; i < 40; i++) expect(await count(stack.pool, `payload->>'marker' = '${i}'`)).toBe(1);
  expect(await count(stack.pool)).toBe(1 + 40 + 1);
  await coalescer.settled();
});

it('a batch whose write fails commits none of its tasks, so the client can retry it without duplicates', async () => {
  const reqs = [req({ a: 1 }), req({ b: 1 }, 'kb'), req({ b: 1 }, 'kb'), req({ explode: true })];
  await expect(storeTasks({ pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 }, reqs)).rejects.toThrow(/exploding/);
  expect(await count(stack.pool)).toBe(0);
  expect((await stack.pool.query('SELECT count(*)::int AS n FROM idempotency_keys')).rows[0].n).toBe(0);
  const retried = await storeTasks({ pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 }, reqs.slice(0, 3));
  expect(retried.map((r) => r.kind)).toEqual(['created', 'created', 'replayed']);
  expect(await count(stack.pool)).toBe(2);
});

it('POST /tasks/batch answers 500 with nothing committed when Postgres refuses one of its tasks; the retry creates each task once', async () => {
  const api = await startApi(stack);
  try {
    const post = (tasks: unknown[]) => fetch(`${api.url}/tasks/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tasks }) });
    const good = Array.from({ length: 20 }, (_, i) => ({ type: 'noop', payload: { marker: i } }));
    const failed = await post([...good, { type: 'noop', payload: { explode: 1 } }]);
    expect(failed.status).toBe(500);
    expect(await count(stack.pool)).toBe(0);
    const retried = await post(good);
    expect(retried.status).toBe(200);
    const { results } = (await retried.json()) as { results: { status: number }[] };
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(await count(stack.pool)).toBe(20);
  } finally {
    await api.server.stop();
  }
});

it("the issue's scenario: 80 concurrent keyless POST /tasks and a key pair whose second use holds a lone surrogate", async () => {
  const api = await startApi(stack);
  try {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    for (let run = 0; run < 3; run++) {
      const key = `pair-${run}`;
      const answers = await Promise.all([
        ...Array.from({ length: 80 }, (_, i) => post(JSON.stringify({ type: 'noop', payload: { run, marker: i } }))),
        post(JSON.stringify({ type: 'noop', payload: { s: 'ok' }, idempotency_key: key })),
        post(`{"type":"noop","payload":{"s":"\\ud800"},"idempotency_key":"${key}"}`),
      ]);
      expect(answers.slice(0, 80).map((a) => a.status)).toEqual(Array(80).fill(201));
      expect(answers[80]!.status).toBe(201);
      expect(answers[81]!.status).toBe(400);
      expect(await count(stack.pool, `payload->>'run' = '${run}'`)).toBe(80);
      expect(await count(stack.pool, `idempotency_key = '${key}'`)).toBe(1);
    }
  } finally {
    await api.server.stop();
  }
});

it('a key repeated throughout a batch costs no more statements than distinct keys', async () => {
  const statements: string[] = [];
  const wrapped = new WeakSet<object>();
  const counting = new Proxy(stack.pool, {
    get: (target, prop, receiver) => {
      if (prop === 'query') return (...args: Parameters<Pool['query']>) => (statements.push(String((args[0] as { text?: string }).text ?? args[0]).slice(0, 40)), (target.query as (...a: unknown[]) => unknown).apply(target, args));
      if (prop === 'connect') {
        return async () => {
          const client = await target.connect();
          // The pool hands the same client out again: count through it once.
          if (wrapped.has(client)) return client;
          wrapped.add(client);
          const query = client.query.bind(client);
          client.query = ((...args: unknown[]) => (statements.push(String((args[0] as { text?: string }).text ?? args[0]).slice(0, 40)), (query as (...a: unknown[]) => unknown)(...args))) as typeof client.query;
          return client;
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  const deps = { pool: counting, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 };
  await storeTasks(deps, Array.from({ length: 1000 }, (_, i) => req({ i }, `distinct-${i}`)));
  const distinct = statements.length;
  statements.length = 0;
  const repeated = await storeTasks(deps, Array.from({ length: 1000 }, (_, i) => req({ i: i % 2 }, 'same')));
  expect(statements).toHaveLength(distinct);
  // As if sent one after another: the first creates, equal requests replay it, the others conflict.
  expect(repeated[0]!.kind).toBe('created');
  expect(repeated.filter((r) => r.kind === 'replayed')).toHaveLength(499);
  expect(repeated.filter((r) => r.kind === 'conflict')).toHaveLength(500);
  expect(await count(stack.pool, "idempotency_key = 'same'")).toBe(1);
});
