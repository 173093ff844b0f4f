/** Whatever a handler throws or returns ends as a clean attempt outcome: never a stuck task or an outcome left unwritten. */
import { submitTask } from '../../services/core/tasks/submit';
import { Stack, createStack, runsOf, silentLog, startWorker, taskStatus, waitFor } from '../support/stack';
import { Worker } from '../../services/worker/worker';
import { withDefaults, type Handler } from '../../services/worker/handlers';

let stack: Stack;
let worker: Worker | null = null;

// One stack for the file: each test starts its own worker and looks only at the tasks it submitted,
// all of them final before its worker stops.
beforeAll(async () => {
  stack = await createStack({ RETRY_BASE_MS: 10, RETRY_MAX_MS: 50, RETRY_JITTER_MS: 5, RETRY_SCAN_INTERVAL_MS: 20, REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
});
afterAll(async () => {
  await stack.close();
});

async function submit(type: string, maxRetries = 1): Promise<string> {
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type, priority: 'default', payload: {}, maxRetries, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  return res.task.id;
}

const isFinal = (id: string) => async () => {
  const t = await taskStatus(stack.pool, id);
  return t.status === 'succeeded' || t.status === 'dead' ? t : null;
};

function errorWithMessage(message: unknown): Error {
  const e = new Error('x');
  Object.defineProperty(e, 'message', { value: message });
  return e;
}

const thrown: Record<string, () => unknown> = {
  null_proto: () => Object.create(null),
  bad_to_string: () => ({ toString: () => { throw new Error('no'); } }),
  symbol: () => Symbol('s'),
  message_getter_throws: () => Object.defineProperty(new Error('x'), 'message', { get: () => { throw new Error('getter'); } }),
  message_not_string: () => errorWithMessage(42),
  code_getter_throws: () => Object.defineProperty(new Error('boom'), 'code', { get: () => { throw new Error('getter'); } }),
  stack_getter_throws: () => Object.defineProperty(new Error('boom'), 'stack', { get: () => { throw new Error('getter'); } }),
  a_string: () => 'plain string',
  a_null: () => null,
};

it.each(Object.keys(thrown))('a handler throwing %s fails each attempt with readable text and ends dead, not stuck', async (kind) => {
  const handlers: Record<string, Handler> = { bad: async () => { throw thrown[kind]!(); } };
  ({ worker } = startWorker(stack, { handlers }));
  const id = await submit('bad', 1);
  const t = await waitFor(isFinal(id), 8000, `task ${kind} final`);
  expect(t).toMatchObject({ status: 'dead', attempts: 2 });
  const runs = await runsOf(stack.pool, id);
  expect(runs.map((r) => r.outcome)).toEqual(['failed', 'failed']);
  for (const r of runs) expect(typeof r.error).toBe('string');
});

it('a handler that returns a value without a promise succeeds with that value', async () => {
  const handlers = { sync: (() => ({ ok: 1 })) as unknown as Handler };
  ({ worker } = startWorker(stack, { handlers }));
  const id = await submit('sync', 0);
  expect(await waitFor(isFinal(id), 8000)).toMatchObject({ status: 'succeeded', attempts: 1 });
  const { rows } = await stack.pool.query('SELECT result FROM tasks WHERE id = $1', [id]);
  expect(rows[0].result).toEqual({ ok: 1 });
});

it.each([
  ['bigint', () => ({ n: BigInt(1) }), /not JSON-serializable/],
  ['cycle', () => { const o: Record<string, unknown> = {}; o.self = o; return o; }, /not JSON-serializable/],
  ['huge', () => 'x'.repeat(70_000), /limit is 65536/],
  ['throwing toJSON', () => ({ toJSON: () => { throw 'nope'; } }), /not JSON-serializable/],
])('a result that cannot be stored (%s) fails the attempt with a readable error', async (_kind, make, message) => {
  ({ worker } = startWorker(stack, { handlers: { res: async () => make() } }));
  const id = await submit('res', 0);
  const t = await waitFor(isFinal(id), 8000);
  expect(t).toMatchObject({ status: 'dead', attempts: 1 });
  expect(t.last_error).toMatch(message);
});

it('a handler that throws synchronously fails its attempt with its message', async () => {
  const handlers = { sync_throw: (() => { throw new Error('thrown at once'); }) as unknown as Handler };
  ({ worker } = startWorker(stack, { handlers }));
  const id = await submit('sync_throw', 0);
  const t = await waitFor(isFinal(id), 8000);
  expect(t).toMatchObject({ status: 'dead', attempts: 1 });
  expect(t.last_error).toBe('thrown at once');
});

it('a handler that never settles, or settles after its timeout, fails with a timeout and frees its slot', async () => {
  const late = withDefaults(() => new Promise((r) => setTimeout(() => r({ late: true }), 400)), { timeoutMs: 100 });
  const never = withDefaults(() => new Promise(() => undefined), { timeoutMs: 100 });
  ({ worker } = startWorker(stack, { handlers: { late, never }, cfg: { WORKER_POOL: 1 } }));
  const ids = [await submit('never', 1), await submit('late', 1), await submit('noop', 0)];
  const ts = await Promise.all(ids.map((id) => waitFor(isFinal(id), 10000)));
  expect(ts.map((t) => [t.status, t.attempts])).toEqual([['dead', 2], ['dead', 2], ['succeeded', 1]]);
  for (const t of ts.slice(0, 2)) expect(t.last_error).toMatch(/timed out after 100 ms/);
  const { rows } = await stack.pool.query('SELECT result FROM tasks WHERE id = $1', [ids[1]]);
  expect(rows[0].result).toBeNull();
});
