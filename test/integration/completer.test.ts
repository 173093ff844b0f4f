/**
 * The completer's batching against real Postgres and Redis: outcomes arriving while a write runs
 * wait for it and go together, unless enough of them wait to justify a second write beside it.
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import type { Lease } from '../../services/core/queue/queue';
import { submitTasks } from '../../services/core/tasks/submit';
import { Completer } from '../../services/worker/completer';
import { GatedPool, gatedPool } from '../support/gated-pool';
import { Stack, createStack, silentLog, waitFor } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

async function leased(n: number): Promise<Lease[]> {
  await submitTasks(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 1000 },
    Array.from({ length: n }, () => ({ type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' })),
  );
  return stack.queue.lease({ max: n, visibilityMs: 60_000 });
}

const success = (l: Lease) => ({
  id: l.message.id,
  token: l.token,
  attempt: l.attempt,
  workerId: 'w',
  startedAtMs: Date.now(),
  durationMs: 1,
  error: null,
  dead: false,
  delayMs: 0,
  priority: l.message.priority,
  typeLabel: 'noop',
});

type Options = ConstructorParameters<typeof Completer>[1];

/** A completer over `gated` (writes held until released, unless `open`), with the given pacing. */
function completerOver(gated: GatedPool, opts: Partial<Options>, open = false): Completer {
  if (open) gated.release();
  return new Completer(
    { pool: gated.pool, queue: stack.queue, log: silentLog, metrics: workerMetrics(createRegistry('worker')) },
    { maxBatch: 500, maxConcurrent: 2, overlapAt: 64, minGapMs: 0, eagerAt: 1, flushAt: 1, giveUpAfterMs: 10_000, reclaimAfterMs: 1000, ...opts },
  );
}

const turns = (n: number) => new Promise<void>((r) => (n <= 0 ? r() : setImmediate(() => void turns(n - 1).then(r))));

async function scenario(overlapAt: number, second: number): Promise<{ maxRunning: number; sizes: number[] }> {
  const gated = gatedPool(stack.pool, 'record-outcomes');
  const completer = completerOver(gated, { overlapAt });
  const leases = await leased(3 + second);
  const done = leases.slice(0, 3).map((l) => completer.complete(success(l)));
  await turns(5); // the first write starts and waits at the gate
  done.push(...leases.slice(3).map((l) => completer.complete(success(l))));
  await turns(5);
  gated.release();
  expect(await Promise.all(done)).toEqual(leases.map(() => 'applied'));
  const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'succeeded'`, [leases.map((l) => l.message.id)]);
  expect(rows[0].n).toBe(leases.length);
  return { maxRunning: gated.stats.maxRunning, sizes: gated.stats.sizes };
}

it('outcomes arriving during a write wait for it and go in one batch after it', async () => {
  expect(await scenario(64, 5)).toEqual({ maxRunning: 1, sizes: [3, 5] });
});

it('a second write runs beside the first once enough outcomes wait', async () => {
  expect(await scenario(4, 5)).toEqual({ maxRunning: 2, sizes: [3, 5] });
});

it('a trickle is written at most every minGapMs, unless eagerAt outcomes wait', async () => {
  const gated = gatedPool(stack.pool, 'record-outcomes');
  // A gap far longer than anything here waits: the gap runs from the first write's start, so with
  // 400 ms a first write slowed past 250 ms (a loaded Postgres) let the second go out on its own.
  const completer = completerOver(gated, { minGapMs: 60_000, eagerAt: 3, flushAt: 3 }, true);
  const leases = await leased(4);
  // The first write goes at once: nothing was written for longer than the gap.
  await completer.complete(success(leases[0]!));
  // The next one waits for the gap…
  const second = completer.complete(success(leases[1]!));
  await new Promise((r) => setTimeout(r, 150));
  expect(gated.stats.sizes).toEqual([1]);
  // …unless enough outcomes pile up meanwhile: then they go at once, together, long before the
  // gap (a minute after the first write) is over.
  const rest = leases.slice(2).map((l) => completer.complete(success(l)));
  await waitFor(async () => gated.stats.sizes.length > 1, 10_000, 'the eager write');
  expect(gated.stats.sizes).toEqual([1, 3]);
  expect(await Promise.all([second, ...rest])).toEqual(['applied', 'applied', 'applied']);
});

it('flush() writes what waits for pacing at once, without starving the event loop', async () => {
  const gated = gatedPool(stack.pool, 'record-outcomes');
  const completer = completerOver(gated, { minGapMs: 60_000, eagerAt: 100, flushAt: 100 }, true);
  const [first, second] = await leased(2);
  await completer.complete(success(first!));
  const paced = completer.complete(success(second!)); // would wait a minute for its turn
  let timerRan = false;
  setTimeout(() => (timerRan = true), 1);
  await completer.flush();
  expect(await paced).toBe('applied');
  expect(gated.stats.sizes).toEqual([1, 1]);
  await new Promise((r) => setTimeout(r, 5));
  expect(timerRan).toBe(true);
});

it('an outcome Postgres refuses is stored as a final failure, and the rest of its batch as they were', async () => {
  const completer = completerOver(gatedPool(stack.pool, 'record-outcomes'), {}, true);
  const leases = await leased(4);
  // Past the worker's own checks (a NUL escape jsonb refuses): the batch must not fail for it.
  const results = ['{"ok":1}', '"\\u0000"', '[2]', null];
  const done = leases.map((l, i) => completer.complete({ ...success(l), result: results[i] }));
  expect(await Promise.all(done)).toEqual(['applied', 'applied', 'applied', 'applied']);
  const { rows } = await stack.pool.query<{ id: string; status: string; result: unknown; last_error: string | null }>(
    'SELECT id, status::text, result, last_error FROM tasks WHERE id = ANY($1::uuid[])',
    [leases.map((l) => l.message.id)],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  expect(leases.map((l) => byId.get(l.message.id)!.status)).toEqual(['succeeded', 'dead', 'succeeded', 'succeeded']);
  expect(leases.map((l) => byId.get(l.message.id)!.result)).toEqual([{ ok: 1 }, null, [2], null]);
  expect(byId.get(leases[1]!.message.id)!.last_error).toMatch(/^the attempt's outcome could not be stored: .*unsupported Unicode escape sequence/);
  const runs = await stack.pool.query<{ outcome: string; error_type: string }>('SELECT outcome::text, error_type FROM task_runs WHERE task_id = $1', [leases[1]!.message.id]);
  expect(runs.rows).toEqual([{ outcome: 'failed', error_type: 'UnstorableOutcome' }]);
  // Redis agrees: the refused one is dead-lettered, nothing is left leased.
  expect(await stack.queue.deadLetterIds('default')).toContain(leases[1]!.message.id);
  expect(await stack.queue.lease({ max: 10, visibilityMs: 1000 })).toEqual([]);
});

it('an outcome written again after its answer was lost, of a task it killed, leaves the task dead-lettered in Redis', async () => {
  // The first write commits, and its answer is lost (the connection dropped): the completer writes
  // the batch again and finds the task final already.
  let lost = false;
  const pool = new Proxy(stack.pool, {
    get(target, prop) {
      if (prop !== 'query') return Reflect.get(target, prop);
      return async (config: { name?: string }, values?: unknown[]) => {
        const res = await target.query(config as never, values as never);
        if (config.name === 'record-outcomes' && !lost) {
          lost = true;
          throw new Error('Connection terminated unexpectedly');
        }
        return res;
      };
    },
  });
  const completer = new Completer(
    { pool, queue: stack.queue, log: silentLog, metrics: workerMetrics(createRegistry('worker')) },
    { maxBatch: 500, maxConcurrent: 2, overlapAt: 64, minGapMs: 0, eagerAt: 1, flushAt: 1, giveUpAfterMs: 10_000, reclaimAfterMs: 1000 },
  );
  const [lease] = await leased(1);
  const id = lease!.message.id;
  expect(await completer.complete({ ...success(lease!), error: 'boom', dead: true })).toBe('lease-lost');
  expect(lost).toBe(true);
  const { rows } = await stack.pool.query('SELECT status::text FROM tasks WHERE id = $1', [id]);
  expect(rows[0].status).toBe('dead');
  // Redis agrees: dead-lettered (in the DLQ listing and its gauge), not leased, not forgotten.
  expect(await stack.queue.deadLetterIds('default')).toContain(id);
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([{ deadLetteredAfter: 1 }]);
  expect(await stack.inspect.zscore(stack.keysOf('default').processing, id)).toBeNull();
});
