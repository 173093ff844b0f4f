/**
 * Fault suite: real api and worker processes, real Postgres and Redis (a private pair this file may
 * stop), a few thousand mixed tasks per scenario, one injected fault each. Afterwards Postgres must
 * show every accepted task final, in its expected state, with its executions recorded.
 * `UPDATE_DOCS=1 npx jest test/faults` rewrites docs/reliability.md from the measured table.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { freePort, killAllChildren, spawnService } from '../support/processes';
import { FaultServices, ServiceSet } from '../support/fault-cluster';
import { Ctx, outcomes, Row, runScenario, ScenarioOptions, TASKS, VIS_MS } from '../support/fault-scenario';
import { mixedPlan } from '../support/load-driver';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';

const ROOT = path.resolve(__dirname, '../..');

const svc = new FaultServices();
const rows: Row[] = [];

beforeAll(() => svc.start());
afterAll(async () => {
  await killAllChildren();
  svc.stopAll();
  writeReport(rows);
});

const scenario = (name: string, fault: (ctx: Ctx<FaultServices>) => Promise<void>, opts?: ScenarioOptions) => runScenario(svc, rows, name, fault, opts);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Each scenario runs a few thousand tasks through real processes and waits out lease expiries.
jest.setTimeout(150_000);

it('SIGKILL a worker holding leases: another worker finishes its tasks after the visibility timeout', async () => {
  const row = await scenario('worker SIGKILL', async ({ set }) => {
    set.workers[0]!.kill();
    await set.workers[0]!.exited;
  });
  expect(row.lost).toBe(0);
});

it('operators cancel 300 tasks while a worker is SIGKILLed, then redrive them: every answer holds, nothing is lost', async () => {
  let set: ServiceSet | null = null;
  const url = () => `http://127.0.0.1:${set!.apiPort}`;
  const post = async (path: string, body?: unknown) => {
    const res = await fetch(`${url()}${path}`, {
      method: 'POST',
      headers: { ...AUTH_HEADER, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  // Slow tasks posted just before the fault, more than the workers' slots, so that cancels meet
  // tasks both waiting and running whatever the machine's speed.
  const plan = mixedPlan(TASKS, 'cancels');
  const at = Math.floor(TASKS * 0.3);
  for (let i = 0; i < 120; i++) {
    plan[at - 120 + i] = { key: `cancels-slow-${i}`, body: { type: 'sleeper', priority: 'default', payload: { sleep_ms: 800 } }, expect: { status: 'succeeded', attempts: 1 } };
  }
  const row = await scenario(
    'cancels during worker SIGKILL, then redrive',
    async (ctx) => {
      set = ctx.set;
      const pool = new Pool({ connectionString: ctx.set.env.POSTGRES_URL, max: 2 });
      // Waiting tasks, and sleepers running on both workers (including the one about to die).
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM tasks WHERE status IN ('queued', 'retrying', 'running') ORDER BY random() LIMIT 300");
      await pool.end();
      const cancels = new Map<string, number>();
      ctx.extras.cancels = cancels;
      const killing = (async () => {
        await sleep(30);
        ctx.set.workers[0]!.kill();
        await ctx.set.workers[0]!.exited;
      })();
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < rows.length) {
            const id = rows[next++]!.id;
            cancels.set(id, (await post(`/tasks/${id}/cancel`)).status);
          }
        }),
      );
      await killing;
      expect([...cancels.values()].filter((s) => ![200, 202, 409].includes(s))).toEqual([]);
    },
    {
      plan,
      check: async (all) => {
        const cancelled = [...all.values()].filter((o) => o.status === 'cancelled').map((o) => o.id);
        expect(cancelled.length).toBeGreaterThan(0);
        // The redrive: every cancelled task runs again, once, to an end.
        const res = await post('/tasks/retry', { filter: { status: 'cancelled' } });
        expect(res.body).toMatchObject({ matched: cancelled.length, changed: cancelled.length, has_more: false });
        const pool = new Pool({ connectionString: set!.env.POSTGRES_URL, max: 2 });
        try {
          const deadline = Date.now() + 60_000;
          let left = -1;
          while (Date.now() < deadline) {
            left = (await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead')")).rows[0].n;
            if (left === 0) break;
            await sleep(200);
          }
          expect(left).toBe(0);
          const after = await outcomes(pool);
          for (const id of cancelled) expect([id, after.get(id)!.succeeded_runs <= 1]).toEqual([id, true]);
        } finally {
          await pool.end();
        }
      },
    },
  );
  expect(row.lost).toBe(0);
});

it('workflows while a worker is SIGKILLed and Redis is flushed: every workflow completes, each fan-in runs once after all its parents', async () => {
  const workflows: string[] = [];
  let dbUrl = '';
  const row = await scenario(
    'workflows, worker SIGKILL + FLUSHALL',
    async ({ set, svc: s }) => {
      dbUrl = set.env.POSTGRES_URL!;
      const post = async (body: unknown) => {
        const res = await fetch(`http://127.0.0.1:${set.apiPort}/workflows`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        expect(res.status).toBe(201);
        workflows.push(((await res.json()) as { workflow: { id: string } }).workflow.id);
      };
      // Diamonds with slow middles, and fan-outs of 30 whose fan-in depends on all of them.
      for (let i = 0; i < 10; i++) {
        await post({
          name: `diamond-${i}`,
          tasks: [
            { key: 'a', type: 'echo', payload: { i } },
            { key: 'b', type: 'sleeper', payload: { sleep_ms: 300 }, depends_on: ['a'] },
            { key: 'c', type: 'echo', depends_on: ['a'] },
            { key: 'd', type: 'echo', depends_on: ['b', 'c'] },
          ],
        });
        const middle = Array.from({ length: 30 }, (_, j) => ({ key: `m${j}`, type: j % 3 === 0 ? 'sleeper' : 'noop', payload: { sleep_ms: 200 }, depends_on: ['root'] }));
        await post({ name: `fan-${i}`, tasks: [{ key: 'root', type: 'noop' }, ...middle, { key: 'sink', type: 'echo', depends_on: middle.map((m) => m.key) }] });
      }
      await sleep(200);
      set.workers[0]!.kill();
      await set.workers[0]!.exited;
      const [host, port] = s.redisAddr.split(':');
      execFileSync('redis-cli', ['-h', host!, '-p', port!, 'FLUSHALL']);
    },
    {
      check: async () => {
        const pool = new Pool({ connectionString: dbUrl, max: 2 });
        try {
          const { rows: ws } = await pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM workflows GROUP BY status`);
          expect(ws).toEqual([{ status: 'succeeded', n: workflows.length }]);
          // Every step succeeded with one successful run; runs beyond it were recorded (expired or discarded).
          const { rows: steps } = await pool.query<{ key: string; status: string; ok: number; started: Date; deps_done: Date | null }>(
            `SELECT t.step_key AS key, t.status::text AS status,
                    (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id AND r.outcome = 'succeeded') AS ok,
                    (SELECT min(r.started_at) FROM task_runs r WHERE r.task_id = t.id) AS started,
                    (SELECT max(p.finished_at) FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = t.id) AS deps_done
               FROM tasks t WHERE t.workflow_id IS NOT NULL`,
          );
          expect(steps.length).toBe(10 * 4 + 10 * 32);
          expect(steps.filter((x) => x.status !== 'succeeded' || x.ok !== 1)).toEqual([]);
          // No step started before its dependencies had finished.
          expect(steps.filter((x) => x.deps_done && x.started < x.deps_done)).toEqual([]);
        } finally {
          await pool.end();
        }
      },
    },
  );
  expect(row.lost).toBe(0);
});

it('Redis restarted without persistence mid-run: the reconciler rebuilds it from Postgres', async () => {
  const row = await scenario('Redis restart (no persistence)', async ({ svc: s }) => {
    s.stopRedis();
    await sleep(1000);
    s.restart();
  });
  expect(row.lost).toBe(0);
});

it('FLUSHALL mid-run: nothing accepted is lost', async () => {
  const row = await scenario('Redis FLUSHALL', async ({ svc: s }) => {
    const [host, port] = s.redisAddr.split(':');
    execFileSync('redis-cli', ['-h', host!, '-p', port!, 'FLUSHALL']);
  });
  expect(row.lost).toBe(0);
});

it('Redis loses its ready lists mid-run (the messages survive): the reconciler re-queues those tasks', async () => {
  const row = await scenario('Redis ready lists lost', async ({ set, svc: s }) => {
    const [host, port] = s.redisAddr.split(':');
    const prefix = set.env.REDIS_KEY_PREFIX!;
    // Workers paused briefly (well within their leases) so that tasks wait in the ready lists.
    for (const w of set.workers) process.kill(w.pid, 'SIGSTOP');
    await sleep(500);
    // What an allkeys eviction or an operator's DEL could do: the ready lists go (every tenant's,
    // at every priority), nothing else.
    const lists = execFileSync('redis-cli', ['-h', host!, '-p', port!, '--scan', '--pattern', `{${prefix}}:q:*`]).toString().split('\n').filter(Boolean);
    const deleted = execFileSync('redis-cli', ['-h', host!, '-p', port!, 'DEL', ...lists]);
    for (const w of set.workers) process.kill(w.pid, 'SIGCONT');
    expect(Number(deleted.toString())).toBeGreaterThan(0);
  });
  expect(row.lost).toBe(0);
});

it('SIGKILL a worker while three tenants run at their max-running cap: the cap holds throughout, counts return to 0, nothing is lost', async () => {
  const CAP = 5;
  // Three tenants, with enough slow tasks that each stays at its cap.
  const plan = mixedPlan(TASKS, 'capped').map((p, i) => ({ ...p, tenant: ['alpha', 'beta', 'gamma'][i % 3] }));
  let redis: Redis | null = null;
  let prefix = '';
  let sampling = true;
  const peaks = new Map<string, number>();
  let sampler: Promise<void> = Promise.resolve();
  const row = await scenario(
    'worker SIGKILL, tenants at max-running',
    async ({ set, svc: s }) => {
      prefix = set.env.REDIS_KEY_PREFIX!;
      const [host, port] = s.redisAddr.split(':');
      redis = new Redis(Number(port), host!);
      // The running counts, sampled until the end: never above the cap (a killed worker's leases
      // count until reaped, so they never make room early).
      sampler = (async () => {
        while (sampling) {
          for (const [t, n] of Object.entries(await redis!.hgetall(`{${prefix}}:running`))) peaks.set(t, Math.max(peaks.get(t) ?? 0, Number(n)));
          await sleep(50);
        }
      })();
      await sleep(300);
      set.workers[0]!.kill();
      await set.workers[0]!.exited;
    },
    {
      plan,
      env: { TENANT_MAX_RUNNING: String(CAP) },
      check: async () => {
        sampling = false;
        await sampler;
        expect(Math.max(...peaks.values())).toBe(CAP);
        // Postgres has every outcome before Redis ends the lease: the last counts go a moment later.
        const deadline = Date.now() + 5000;
        while (Object.keys(await redis!.hgetall(`{${prefix}}:running`)).length > 0 && Date.now() < deadline) await sleep(50);
        expect(await redis!.hgetall(`{${prefix}}:running`)).toEqual({});
        await redis!.quit();
      },
    },
  );
  expect(row.lost).toBe(0);
});

it('Postgres stopped and restarted mid-run: the API answers 503 meanwhile, workers resume', async () => {
  const row = await scenario('Postgres restart', async ({ svc: s }) => {
    s.stopPostgres();
    await sleep(1500);
    s.restart();
  });
  expect(row.lost).toBe(0);
  expect(row.clientRetries).toBeGreaterThan(0);
});

it('SIGKILL the API while clients post: every task answered 201 completes', async () => {
  const row = await scenario('API SIGKILL', async ({ set }) => {
    set.api!.kill();
    await set.api!.exited;
    await sleep(300);
    await set.startApi();
  });
  expect(row.lost).toBe(0);
});

it('a worker paused (SIGSTOP) past its lease, then resumed: its late outcomes are rejected', async () => {
  // Slow tasks posted just before the pause, so the paused worker surely holds leases.
  const plan = mixedPlan(TASKS, 'sigstop');
  const at = Math.floor(TASKS * 0.3);
  for (let i = 0; i < 40; i++) {
    plan[at - 40 + i] = { key: `sigstop-slow-${i}`, body: { type: 'sleeper', priority: 'high', payload: { sleep_ms: 1500 } }, expect: { status: 'succeeded', attempts: 1 } };
  }
  const row = await scenario(
    'worker SIGSTOP past lease',
    async ({ set }) => {
      const paused = set.workers[0]!;
      process.kill(paused.pid, 'SIGSTOP');
      await sleep(VIS_MS * 2);
      process.kill(paused.pid, 'SIGCONT');
    },
    {
      plan,
      check: async (all) => {
        const discarded = [...all.values()].reduce((n, o) => n + o.discarded_runs, 0);
        // Every late outcome the paused worker reported failed the token check and was kept as `discarded`.
        expect(discarded).toBeGreaterThan(0);
      },
    },
  );
  expect(row.lost).toBe(0);
});

it('SIGTERM a worker during a burst: it drains, exits 0, and nothing is lost or acked twice', async () => {
  let code: number | null = -1;
  const row = await scenario('worker SIGTERM mid-burst', async ({ set }) => {
    code = await set.workers[0]!.stop('SIGTERM', 10000);
  });
  expect(code).toBe(0);
  expect(row.lost).toBe(0);
});

it('poison tasks (a handler that kills its worker, one that hangs) end dead without taking the pool down', async () => {
  const plan = mixedPlan(TASKS / 2, 'poison');
  // Each crash takes a worker (and its other in-flight tasks) down until the supervisor restarts it.
  for (let i = 0; i < 4; i++) {
    plan.splice(i * 200 + 10, 0, { key: `crash-${i}`, body: { type: 'crash', max_retries: 1 }, expect: { status: 'dead', attempts: 2 } });
    plan.splice(i * 200 + 20, 0, { key: `hang-${i}`, body: { type: 'hang', max_retries: 1 }, expect: { status: 'dead', attempts: 2 } });
  }
  const row = await scenario(
    'poison tasks (crash, hang)',
    async (ctx) => {
      ctx.supervise = true;
    },
    { plan, faultAt: 0 },
  );
  expect(row.lost).toBe(0);
});

it("readiness follows the dependencies: the api's /readyz fails without Postgres (not Redis), the worker's without either, dependency_up says which, and all recover when they return", async () => {
  const db = await svc.createDatabase();
  const env = { POSTGRES_URL: db, ...svc.redisEnv(), REDIS_KEY_PREFIX: `ready${Date.now()}`, READINESS_TIMEOUT_MS: '500', LOG_LEVEL: 'info' };
  const [apiPort, apiMetrics, workerMetrics] = [await freePort(), await freePort(), await freePort()];
  const api = await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${apiMetrics}` });
  const worker = await spawnService('dist/services/worker/main.js', { ...env, METRICS_ADDR: `127.0.0.1:${workerMetrics}` });
  const readyz = async (port: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as { checks?: Record<string, string> };
    return { status: res.status, postgres: body.checks?.postgres === 'ok', redis: body.checks?.redis === 'ok' };
  };
  const dependencyUp = async () => {
    const text = await (await fetch(`http://127.0.0.1:${apiMetrics}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    return Object.fromEntries([...text.matchAll(/^dependency_up\{[^}]*dependency="(\w+)"[^}]*\} (\S+)$/gm)].map((m) => [m[1], Number(m[2])]));
  };
  /** Polls until the api, the worker and dependency_up all say `want` (bounded: no timing assertion). */
  const settles = async (what: string, want: { api: number; worker: number; up: Record<string, number> }) => {
    const deadline = Date.now() + 30_000;
    let last: unknown;
    for (;;) {
      try {
        last = { api: await readyz(apiPort), worker: await readyz(workerMetrics), up: await dependencyUp() };
        const l = last as { api: { status: number }; worker: { status: number }; up: Record<string, number> };
        if (l.api.status === want.api && l.worker.status === want.worker && JSON.stringify(l.up) === JSON.stringify(want.up)) return;
      } catch (err) {
        last = String(err);
      }
      if (Date.now() > deadline) throw new Error(`${what}: last ${JSON.stringify(last)}`);
      await sleep(250);
    }
  };
  try {
    await settles('both up', { api: 200, worker: 200, up: { postgres: 1, redis: 1 } });
    svc.stopPostgres();
    await settles('Postgres down', { api: 503, worker: 503, up: { postgres: 0, redis: 1 } });
    svc.restart();
    await settles('Postgres back', { api: 200, worker: 200, up: { postgres: 1, redis: 1 } });
    svc.stopRedis();
    await settles('Redis down', { api: 200, worker: 503, up: { postgres: 1, redis: 0 } });
    svc.restart();
    await settles('Redis back', { api: 200, worker: 200, up: { postgres: 1, redis: 1 } });
  } finally {
    await Promise.all([api.stop('SIGTERM', 10_000), worker.stop('SIGTERM', 10_000)]);
  }
});

function writeReport(measured: Row[]): void {
  const table = [
    '| Scenario | Tasks accepted | Final | Lost | Duplicate executions | All final after fault (s) | Client retries |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...measured.map((r) => `| ${r.scenario} | ${r.accepted} | ${r.final} | ${r.lost} | ${r.duplicates} | ${r.recoverySeconds.toFixed(1)} | ${r.clientRetries} |`),
  ].join('\n');
  const dir = path.join(ROOT, '.data', 'fault');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'reliability-table.md'), `${table}\n`);
  if (process.env.UPDATE_DOCS === '1' && measured.length === 10) {
    writeFileSync(path.join(ROOT, 'docs/reliability.md'), reliabilityDoc(table));
  }
}

function reliabilityDoc(table: string): string {
  return `# Reliability

Delivery guarantee: **at least once**. Every task the API answered \`201\` for reaches a final state
(\`succeeded\` or \`dead\`), whatever crashes in between, and a stale worker can never overwrite a
newer outcome. Postgres is the source of truth; Redis is an index of work that the reconciler can
always rebuild from it.

## Measured by the fault suite

Produced by \`UPDATE_DOCS=1 npx jest test/faults\` (the same suite runs in CI on every change). Each
scenario starts the api and two workers as real processes against a private Postgres and Redis,
posts ${TASKS} tasks of a mixed workload (noop, flaky, always_fail, sleeper; all four priorities)
from 16 clients that retry with the same \`Idempotency-Key\` on errors and \`503\`s, injects the
fault after 30% of the tasks were sent, and then checks Postgres: every accepted task final, in its
expected state (\`always_fail\` dead after exactly \`max_retries + 1\` attempts, the others
succeeded exactly once), attempts within bounds.

- *Duplicate executions*: handler runs beyond the ones the task needed (a lease lost to a crash,
  pause or data loss makes a task run again); they are recorded in \`task_runs\` as \`expired\` or
  \`discarded\`.
- *All final after fault*: seconds from the fault until every accepted task was final (includes
  finishing the rest of the workload; visibility timeout in these runs: ${VIS_MS / 1000} s).
- *Client retries*: requests the clients had to repeat (connection refused or \`503\` while a
  dependency was down).

${table}

## How each failure is handled

| Failure | What happens |
|---|---|
| Worker crashes (SIGKILL, OOM, node drain) | Its leases expire after \`VIS_TIMEOUT_MS\`; the reaper (in any worker) returns them to their queue and counts the lost attempt; a task out of attempts goes to the dead-letter queue. |
| Worker paused past its lease (GC, SIGSTOP, VM freeze) | The lease is reaped and the task runs elsewhere. When the paused worker resumes, its heartbeat finds the lease gone and aborts the handler; any outcome it still reports fails the token check in Postgres and is recorded as \`discarded\`. |
| Worker cut off from Redis (a partition: its calls neither fail nor answer) | Its heartbeats cannot extend its leases. Once a lease may have run out (a visibility timeout after the last extension Redis confirmed), the worker aborts that handler itself, before the reaper can hand the task to another worker; its outcome is recorded as \`discarded\` and the attempt counts as lost. Handlers running through a Redis outage longer than \`VIS_TIMEOUT_MS\` are aborted the same way. |
| Worker stopped (SIGTERM) | Stops leasing, lets running handlers finish within \`SHUTDOWN_GRACE_MS\`, hands the rest back without counting the attempt, exits 0. |
| API crashes between the Postgres commit and the Redis push | The task is \`queued\` in Postgres but unknown to Redis; the reconciler pushes it after \`RECONCILE_GRACE_MS\`. A client retry with the same idempotency key gets the task (and pushes it at once). |
| A push of a task read waiting in Postgres (an idempotent replay, the reconciler, the delayed loader, an operator's retry) while a worker runs it | A worker's start is written late, so a running task can still read as waiting; had it ended before the push landed, Redis would have forgotten it and the push would run it again. Each such push holds a share lock on the rows still waiting (\`FOR SHARE SKIP LOCKED\`): the worker's outcome write, which Redis forgetting follows, waits for it, so Redis still knows the task and the push leaves it alone; a row locked by someone else is waited for (at most 2 s) and its status read again. The push is bounded (2 s; the reconciler's 5 s) so a stalled Redis cannot hold a worker's outcomes; past that the window is open again. |
| Redis unavailable | The API **accepts** tasks into Postgres (\`201\`) and the reconciler pushes them once Redis is back; \`/readyz\` reports Redis down. Workers back off and reconnect without crashing. |
| Redis restarted without persistence, flushed, or failed over with data loss | The reconciler rebuilds every unfinished task from Postgres: waiting ones to their queue, retrying ones to their retry set at their due time, running ones whose lease vanished count the attempt and go back to the queue (or dead). Workers whose leases vanished abort those handlers. |
| A task Redis knows but holds in no queue (a list entry lost to eviction, an operator's edit or a bug) | Every reconciler pass compares how many tasks Redis knows with how many its ready lists, leases, retry sets and dead-letter lists hold (a count). When they differ it finds the tasks held nowhere, forgets them in Redis and indexes them again from Postgres in the same pass (\`reconciler_repairs_total{kind="unheld"}\`; a delayed task goes back to its due time), and removes entries of tasks Redis does not know. That search runs in pages of at most 1,000 ids a script (\`sweep-held.lua\`, \`sweep-unheld.lua\`), so it never holds Redis for as long as the backlog is long; a task is forgotten only after a check of every place that could hold it, made in the same script, so one that moved between pages is left alone. |
| Postgres unavailable | The API answers \`503\` with \`Retry-After\` (the insert is one transaction: nothing is half-created). Workers hand back what they lease until Postgres answers, and retry writing finished outcomes until the visibility timeout; past it the task runs again. |
| A handler hangs | \`TASK_TIMEOUT_MS\` aborts it; the attempt fails and retries, then dead-letters. |
| A handler kills its worker process | The worker restarts (Deployment); the lease expires and counts as an attempt, so the task ends in the dead-letter queue after \`max_retries + 1\` crashes instead of crashing workers forever. |
| A worker dies while its tenants run at their \`--max-running\` cap | Its leases keep counting against their tenants until the reaper reclaims them, so the cap holds throughout (no other worker starts more in the meantime); each reclaimed lease frees its place, and the tenant's next task starts at once. |

## What a client's request can and cannot do

A request is answered only for what was committed: every \`201\` is exactly one task, and a \`5xx\`
means nothing of that request was created (requests coalesced into one statement, and the tasks of
one batch, are stored all or nothing; a coalesced batch that fails is written again one request at
a time, so one bad request never fails, duplicates or replays its neighbours). Input Postgres or a
JavaScript handler could not hold exactly (invalid UTF-8, NUL or lone surrogates in strings and
keys, inexact numbers, nesting beyond \`MAX_PAYLOAD_DEPTH\`) is refused with \`400\` before anything
is written. Memory is bounded by settings (bodies in flight, bytes per statement, the reconciler's
payload reads, heap limits from the container), and slow clients by timeouts and a connection
cap. Requests pipelined on one connection are handled one at a time, in order (up to 32 wait
their turn; one beyond gets \`503\` with \`Retry-After\` and did nothing), and a broken request among
them is answered (\`400\`, \`408\`, \`431\`, then the connection closes) only after those before it.
A \`400\` lists at most 20 field problems. \`test/hostile/\` and the fuzz test (\`test/fuzz/\`,
\`npm run fuzz\`) check all of this.

## What a handler should do

Because a task can run more than once, make its effects idempotent: key them by the task \`id\`
(an upsert keyed by it, or a "processed" row written in the same transaction as the effect), and
stop work when \`signal\` aborts.
`;
}
