/**
 * Scenario 10 (issue 20): workflows against plain tasks, through the API and worker processes.
 * 10a: fan-out 1 -> 1,000 -> fan-in 1 of no-op steps, posted as one workflow, against the same
 * 1,002 no-op tasks posted flat (POST /tasks/batch: 1,000 + 2), each drained by one worker; rounds
 * alternate. 10b: a chain of 100 no-op steps at idle, each step's overhead (its dependency's
 * handler ended -> its own handler started, both on the worker's clock). 10c: 2,500 diamonds
 * (10,000 steps) posted one workflow per request against 10,000 plain tasks posted one per
 * request, 16 connections, two workers: end-to-end tasks per second.
 */
import type { Pool } from 'pg';
import { poster } from './http-driver';

export interface BenchKit {
  /** A fresh database with api + `workers` worker processes (default settings) on it, torn down after `fn`. */
  withServices<T>(workers: number, fn: (url: string, pool: Pool) => Promise<T>): Promise<T>;
  headers: Record<string, string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, timeoutMs = 300_000, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('workflow benchmark timed out');
    await sleep(everyMs);
  }
}

async function postJson(url: string, headers: Record<string, string>, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const out = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300) throw new Error(`${url}: ${res.status} ${JSON.stringify(out).slice(0, 300)}`);
  return out;
}

const unfinished = async (pool: Pool) =>
  (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status IN ('waiting', 'queued', 'running', 'retrying')")).rows[0]!.n;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

// The flat drain's time swings with the host from one round to the next: fifteen rounds keep the
// medians steady enough to compare runs.
export async function fanOut(kit: BenchKit, rounds = Number(process.env.BENCH_WORKFLOW_ROUNDS ?? 15)): Promise<Record<string, number>> {
  return kit.withServices(1, async (url, pool) => {
    const width = 1000;
    const flat = async () => {
      const t0 = performance.now();
      const tasks = Array.from({ length: width + 2 }, () => ({ type: 'noop' }));
      await Promise.all([postJson(`${url}/tasks/batch`, kit.headers, { tasks: tasks.slice(0, 1000) }), postJson(`${url}/tasks/batch`, kit.headers, { tasks: tasks.slice(1000) })]);
      const posted = performance.now();
      await until(async () => (await unfinished(pool)) === 0);
      if (process.env.BENCH_WORKFLOW_PHASES === '1') process.stderr.write(`flat: post ${(posted - t0).toFixed(0)} ms; drain ${(performance.now() - posted).toFixed(0)} ms\n`);
      return (performance.now() - t0) / 1000;
    };
    const workflow = async () => {
      const t0 = performance.now();
      const middle = Array.from({ length: width }, (_, i) => ({ key: `m${i}`, type: 'noop', depends_on: ['root'] }));
      const wf = (await postJson(`${url}/workflows`, kit.headers, { name: 'fan-out', tasks: [{ key: 'root', type: 'noop' }, ...middle, { key: 'sink', type: 'noop', depends_on: middle.map((m) => m.key) }] })) as {
        workflow: { id: string };
      };
      const posted = performance.now();
      await until(async () => (await pool.query<{ status: string }>('SELECT status FROM workflows WHERE id = $1', [wf.workflow.id])).rows[0]!.status !== 'running');
      if (process.env.BENCH_WORKFLOW_PHASES === '1') {
        const { rows } = await pool.query(
          `SELECT w.created_at, max(t.finished_at) FILTER (WHERE t.step_key = 'root') AS root_done, min(t.first_started_at) FILTER (WHERE t.step_key LIKE 'm%') AS mid_first,
                  max(t.finished_at) FILTER (WHERE t.step_key LIKE 'm%') AS mid_done, max(t.first_started_at) FILTER (WHERE t.step_key = 'sink') AS sink_start, w.finished_at
             FROM workflows w JOIN tasks t ON t.workflow_id = w.id WHERE w.id = $1 GROUP BY w.id`,
          [wf.workflow.id],
        );
        const r = rows[0] as Record<string, Date>;
        const ms = (a: string, b: string) => r[b]!.getTime() - r[a]!.getTime();
        process.stderr.write(`phases: post ${(posted - t0).toFixed(0)} ms; root ${ms('created_at', 'root_done')}, first middle start ${ms('root_done', 'mid_first')}, middles ${ms('mid_first', 'mid_done')}, sink start ${ms('mid_done', 'sink_start')}, end ${ms('sink_start', 'finished_at')} ms\n`);
      }
      return (performance.now() - t0) / 1000;
    };
    // One of each to warm the processes up, then rounds alternating which goes first.
    await flat();
    await workflow();
    const f: number[] = [];
    const w: number[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) (f.push(await flat()), w.push(await workflow()));
      else (w.push(await workflow()), f.push(await flat()));
    }
    return { flatSeconds: median(f), workflowSeconds: median(w), ratio: median(w) / median(f), ratioWorst: Math.max(...w.map((x, i) => x / f[i]!)) };
  });
}

export async function chain(kit: BenchKit, length = 100): Promise<Record<string, number>> {
  return kit.withServices(1, async (url, pool) => {
    const run = async () => {
      const tasks = Array.from({ length }, (_, i) => ({ key: `s${i}`, type: 'noop', ...(i > 0 ? { depends_on: [`s${i - 1}`] } : {}) }));
      const wf = (await postJson(`${url}/workflows`, kit.headers, { name: 'chain', tasks })) as { workflow: { id: string } };
      await until(async () => (await pool.query<{ status: string }>('SELECT status FROM workflows WHERE id = $1', [wf.workflow.id])).rows[0]!.status !== 'running', 120_000, 20);
      const { rows } = await pool.query<{ gap: number }>(
        `WITH s AS (
           SELECT t.id, t.first_started_at, (SELECT max(r.finished_at) FROM task_runs r WHERE r.task_id = t.id AND r.outcome = 'succeeded') AS ended
             FROM tasks t WHERE t.workflow_id = $1)
         SELECT extract(epoch FROM c.first_started_at - p.ended) * 1000 AS gap
           FROM workflow_edges e JOIN s p ON p.id = e.parent JOIN s c ON c.id = e.child`,
        [wf.workflow.id],
      );
      return rows.map((r) => Number(r.gap));
    };
    await run();
    await sleep(500);
    const gaps = await run();
    return { steps: length, p50Ms: median(gaps), p90Ms: pct(gaps, 90), maxMs: Math.max(...gaps) };
  });
}

export async function diamonds(kit: BenchKit, count = Number(process.env.BENCH_DIAMONDS ?? 2500)): Promise<Record<string, number>> {
  return kit.withServices(2, async (url, pool) => {
    const send = async (path: string, bodies: string[]) => {
      const client = poster(`${url}${path}`, 16, kit.headers);
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < bodies.length) {
          const status = await client.post(bodies[next++]!);
          if (status >= 300) throw new Error(`${path}: ${status}`);
        }
      }));
      client.close();
    };
    const diamond = JSON.stringify({
      name: 'diamond',
      tasks: [
        { key: 'a', type: 'noop' },
        { key: 'b', type: 'noop', depends_on: ['a'] },
        { key: 'c', type: 'noop', depends_on: ['a'] },
        { key: 'd', type: 'noop', depends_on: ['b', 'c'] },
      ],
    });
    const plainRun = async (n: number) => {
      const t0 = performance.now();
      await send('/tasks', Array.from({ length: n }, () => '{"type":"noop"}'));
      await until(async () => (await unfinished(pool)) === 0, 600_000, 20);
      return n / ((performance.now() - t0) / 1000);
    };
    const diamondRun = async (n: number) => {
      const t0 = performance.now();
      await send('/workflows', Array.from({ length: n }, () => diamond));
      await until(async () => (await unfinished(pool)) === 0, 600_000, 20);
      return (n * 4) / ((performance.now() - t0) / 1000);
    };
    // Warm both paths up, then alternate.
    await plainRun(2000);
    await diamondRun(500);
    const plain: number[] = [];
    const dia: number[] = [];
    for (let i = 0; i < 3; i++) {
      if (i % 2 === 0) (plain.push(await plainRun(count * 4)), dia.push(await diamondRun(count)));
      else (dia.push(await diamondRun(count)), plain.push(await plainRun(count * 4)));
    }
    return { plainTasksPerSecond: median(plain), diamondStepsPerSecond: median(dia), ratio: median(dia) / median(plain) };
  });
}
