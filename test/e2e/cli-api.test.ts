/**
 * The CLI's API commands (tasks, dlq, queues, workflows) against the built api and worker processes: output
 * (tables, --json), exit statuses (0 done, 1 refused or failed, 2 bad usage) and one-line messages.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { TaskSchedulerClient } from '../../services/client';
import { createKey } from '../../services/core/tenancy/key-store';
import { TEST_KEY } from '../support/auth';
import { CliRun, runCliCaptured } from '../support/cli-run';
import { freePort } from '../support/processes';
import { ServiceProcesses, startServiceProcesses } from '../support/service-processes';
import { waitFor } from '../support/stack';

let svc: ServiceProcesses;
let client: TaskSchedulerClient;
beforeAll(async () => {
  svc = await startServiceProcesses({ label: 'cliapi' });
  client = new TaskSchedulerClient({ baseUrl: svc.url, apiKey: TEST_KEY });
}, 60_000);
afterAll(async () => svc?.stop());

const cli = (argv: string[], env: Record<string, string> = {}, tty = false) => runCliCaptured(argv, { TASK_SCHEDULER_URL: svc.url, TASK_SCHEDULER_KEY: TEST_KEY, ...env }, { tty });
/** A failure is one line on stderr and nothing on stdout. */
function expectOneLine(r: CliRun, code: number, message: RegExp): void {
  expect({ code: r.code, out: r.out }).toEqual({ code, out: '' });
  expect(r.err).toMatch(/^task-scheduler: [^\n]*\n$/);
  expect(r.err).toMatch(message);
}
const statusOf = async (id: string) => (await client.get(id)).status;

describe('tasks get|cancel|retry', () => {
  it('get prints the task and its runs, or the API object with --json', async () => {
    const { task } = await client.submit({ type: 'noop', payload: { hello: 'world' } });
    await waitFor(async () => (await statusOf(task.id)) === 'succeeded');
    const j = await cli(['tasks', 'get', task.id, '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ id: task.id, status: 'succeeded', payload: { hello: 'world' }, runs: [{ attempt: 1, outcome: 'succeeded' }] });
    const h = await cli(['tasks', 'get', task.id.toUpperCase()]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(new RegExp(`^id +${task.id}$`, 'm'));
    expect(h.out).toMatch(/^status +succeeded$/m);
    expect(h.out).toMatch(/^RUNS\nATTEMPT +OUTCOME +WORKER_ID +STARTED_AT +DURATION_MS +ERROR_TYPE +ERROR$/m);
    const echoed = (await client.submit({ type: 'echo', payload: { n: 2 }, timeout_ms: 4000 })).task;
    await waitFor(async () => (await statusOf(echoed.id)) === 'succeeded');
    const e = await cli(['tasks', 'get', echoed.id]);
    expect(e.out).toMatch(/^result +\{"payload":\{"n":2\}\}$/m);
    expect(e.out).toMatch(/^timeout_ms +4000$/m);
    expectOneLine(await cli(['tasks', 'get', '00000000-0000-7000-8000-000000000000']), 1, /no task with id 00000000-0000-7000-8000-000000000000 \(HTTP 404\)/);
  });

  it('cancel: a running task (202, then cancelled), twice is harmless, a final one is refused (exit 1)', async () => {
    const { task } = await client.submit({ type: 'sleeper', payload: { sleep_ms: 60_000 } });
    await waitFor(async () => (await statusOf(task.id)) === 'running');
    const r = await cli(['tasks', 'cancel', task.id, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ id: task.id, cancel_requested_at: expect.any(String) });
    await waitFor(async () => (await statusOf(task.id)) === 'cancelled', 10_000);
    const again = await cli(['tasks', 'cancel', task.id]);
    expect(again).toEqual({ code: 0, out: `${task.id} cancelled\n`, err: `task ${task.id} is cancelled\n` });

    const done = (await client.submit({ type: 'noop' })).task;
    await waitFor(async () => (await statusOf(done.id)) === 'succeeded');
    expectOneLine(await cli(['tasks', 'cancel', done.id]), 1, /is succeeded already.*\(HTTP 409\)/);
  });

  it('retry: a dead task is queued again; any other status is refused (exit 1)', async () => {
    const dead = (await client.submit({ type: 'always_fail', max_retries: 0 })).task;
    await waitFor(async () => (await statusOf(dead.id)) === 'dead');
    const r = await cli(['tasks', 'retry', dead.id]);
    expect(r.code).toBe(0);
    // The status as the answer shows it: a task that fails at once may be running or dead again already.
    expect(r.out).toMatch(new RegExp(`^${dead.id} (queued|running|dead)\n$`));
    expect(r.err).toMatch(/queued again with a fresh budget of 1 attempts/);
    await waitFor(async () => (await client.get(dead.id)).runs?.length === 2);
    const done = (await client.submit({ type: 'noop' })).task;
    await waitFor(async () => (await statusOf(done.id)) === 'succeeded');
    expectOneLine(await cli(['tasks', 'retry', done.id, '--json']), 1, /only a dead or cancelled task can be retried \(HTTP 409\)/);
  });
});

describe('failures and usage', () => {
  it.each([
    [['tasks'], /tasks needs a subcommand/],
    [['tasks', 'frob'], /unknown tasks subcommand "frob"/],
    [['tasks', 'get'], /missing the task ID/],
    [['tasks', 'get', 'nope'], /ID must be a task id \(a UUID\), got "nope"/],
    [['tasks', 'cancel', '00000000-0000-7000-8000-000000000000', 'extra'], /unexpected argument "extra"/],
    [['tasks', 'list', '--status', 'lost'], /--status must be one of waiting, scheduled, queued, running/],
    [['tasks', 'list', '--priority', 'urgent'], /--priority must be one of critical/],
    [['tasks', 'list', '--type', 'a b'], /--type must be/],
    [['tasks', 'list', '--created-after', 'yesterday'], /--created-after must be an RFC 3339 time/],
    [['tasks', 'list', '--created-after', '1d', '--created-before', '2d'], /--created-after must be earlier than --created-before/],
    [['tasks', 'list', '--limit', '0'], /--limit must be a whole number from 1/],
    [['tasks', 'list', '--bogus'], /bogus/],
    [['tasks', 'list', '--api', 'ftp://x'], /--api must be an http\(s\) URL/],
    [['dlq'], /dlq needs a subcommand/],
    [['dlq', 'list', '--status', 'queued'], /status/],
    [['dlq', 'redrive', '--limit', 'all'], /--limit must be a whole number/],
    [['queues', 'now'], /unexpected argument "now"/],
  ])('%j: exit 2, one line naming the problem', async (argv, message) => {
    expectOneLine(await cli(argv), 2, message);
  });

  it('an unreachable API, a refused key: exit 1, one line', async () => {
    const port = await freePort();
    expectOneLine(await cli(['tasks', 'get', '00000000-0000-7000-8000-000000000000', '--api', `http://127.0.0.1:${port}`]), 1, /ECONNREFUSED/);
    expectOneLine(await cli(['queues'], { TASK_SCHEDULER_URL: `http://127.0.0.1:${port}` }), 1, new RegExp(`127\\.0\\.0\\.1:${port}`));
    expectOneLine(await cli(['tasks', 'get', '00000000-0000-7000-8000-000000000000'], { TASK_SCHEDULER_KEY: 'tsk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), 1, /\(HTTP 401\)/);
    const { key } = await createKey(svc.pool, { tenant: 'reader', scopes: ['tasks:read'], expiresInMs: null });
    expectOneLine(await cli(['tasks', 'cancel', '00000000-0000-7000-8000-000000000000', '--key', key]), 1, /tasks:write.*\(HTTP 403\)/);
  });

  it('the built bin: exit statuses 0, 1 and 2', async () => {
    const main = path.resolve(__dirname, '../../dist/services/cli/main.js');
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [main, ...args], { env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })),
      );
    const { task } = await client.submit({ type: 'noop' });
    const ok = await run(['tasks', 'get', task.id, '--json'], { TASK_SCHEDULER_URL: svc.url, TASK_SCHEDULER_KEY: TEST_KEY });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).id).toBe(task.id);
    const refused = await run(['tasks', 'get', task.id], { TASK_SCHEDULER_URL: svc.url });
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/^task-scheduler: .*\(HTTP 401\)\n$/);
    expect(await run(['tasks', 'get', 'x'], {})).toMatchObject({ code: 2, stdout: '' });
  });
});

describe('tasks list', () => {
  it('pages newest first up to --limit; --cursor carries on; the table says there is more', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await client.submit({ type: 'listme', payload: { i } })).task.id);
    const first = await cli(['tasks', 'list', '--type', 'listme', '--limit', '5', '--json']);
    expect(first.code).toBe(0);
    const page = JSON.parse(first.out) as { tasks: { id: string }[]; next_cursor: string | null };
    expect(page.tasks.map((t) => t.id)).toEqual(ids.slice(2).reverse());
    expect(page.next_cursor).toEqual(expect.any(String));
    const rest = JSON.parse((await cli(['tasks', 'list', '--type', 'listme', '--cursor', page.next_cursor!, '--json'])).out) as typeof page;
    expect(rest).toEqual({ tasks: [expect.objectContaining({ id: ids[1] }), expect.objectContaining({ id: ids[0] })], next_cursor: null });

    const table = await cli(['tasks', 'list', '--type', 'listme', '--limit', '3']);
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +STATUS +TYPE +PRIORITY +ATTEMPTS +CREATED_AT +FINISHED_AT +LAST_ERROR$/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual(ids.slice(4).reverse());
    expect(table.err).toMatch(/^more tasks: add --cursor \S+\n$/);
    // Lists of statuses; an age as the time bound.
    const some = JSON.parse((await cli(['tasks', 'list', '--type', 'listme', '--status', 'queued,dead', '--created-after', '1h', '--json'])).out) as typeof page;
    expect(some.tasks).toHaveLength(7);
    expect(JSON.parse((await cli(['tasks', 'list', '--type', 'listme', '--created-before', '1h', '--json'])).out)).toEqual({ tasks: [], next_cursor: null });
  });
});

describe('dlq', () => {
  // Priority low marks this block's tasks (another test above has an always_fail task of its own).
  const N = 600;
  const mine = ['--type', 'always_fail', '--priority', 'low'];
  const where = "type = 'always_fail' AND priority = 'low'";
  let dead: string[];
  beforeAll(async () => {
    dead = [];
    // Batches of 75 share a creation time each: the redrive's steps of 500 end inside one batch
    // (its other 25 tasks head the next step, after the cursor's id), so the walk takes two calls.
    for (let i = 0; i < N; i += 75) {
      const { results } = await client.submitBatch(Array.from({ length: 75 }, () => ({ type: 'always_fail', priority: 'low' as const, max_retries: 0 })));
      dead.push(...results.flatMap((r) => ('task' in r ? [r.task.id] : [])));
      await new Promise((r) => setTimeout(r, 3));
    }
    await waitFor(async () => (await svc.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where} AND status = 'dead'`)).rows[0].n === N, 30_000, 'dead tasks');
  }, 60_000);
  const runsPerTask = async () => (await svc.pool.query<{ runs: number; n: number }>(`SELECT runs, count(*)::int AS n FROM (SELECT t.id, count(r.*)::int AS runs FROM tasks t LEFT JOIN task_runs r ON r.task_id = t.id WHERE t.${where.replace(' AND ', ' AND t.')} GROUP BY t.id) x GROUP BY runs ORDER BY runs`)).rows;

  it('list shows only dead tasks', async () => {
    const r = JSON.parse((await cli(['dlq', 'list', '--priority', 'low', '--limit', '20', '--json'])).out) as { tasks: { status: string; type: string }[] };
    expect(r.tasks).toHaveLength(20);
    for (const t of r.tasks) expect(t).toMatchObject({ status: 'dead', type: 'always_fail' });
  });

  it('redrive --dry-run counts and changes nothing; --limit stops after N', async () => {
    expect(JSON.parse((await cli(['dlq', 'redrive', ...mine, '--dry-run', '--json'])).out)).toEqual({ matched: N, changed: 0, has_more: false, dry_run: true });
    expect((await cli(['dlq', 'redrive', ...mine, '--dry-run'])).out).toBe(`${N} dead task(s) match; nothing was changed (--dry-run)\n`);
    expect(await runsPerTask()).toEqual([{ runs: 1, n: N }]);
    const limited = await cli(['dlq', 'redrive', ...mine, '--limit', '100', '--json']);
    expect(limited.code).toBe(0);
    expect(JSON.parse(limited.out)).toMatchObject({ changed: 100, limited: true });
    await waitFor(async () => (await runsPerTask()).length === 2 && (await runsPerTask())[1]!.n === 100, 20_000, 'the 100 to run again');
    expect(await runsPerTask()).toEqual([{ runs: 1, n: N - 100 }, { runs: 2, n: 100 }]);
  }, 40_000);

  it('redrive of every dead task, which die again at once: each runs exactly once more; a progress bar on a terminal', async () => {
    await waitFor(async () => (await svc.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where} AND status <> 'dead'`)).rows[0].n === 0);
    const r = await cli(['dlq', 'redrive', ...mine], {}, true);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^${N} dead task\\(s\\) queued again \\(${N} matched in \\d+ call\\(s\\)\\)\\n$`));
    expect(r.err).toMatch(/\rredrive \[#*-*\] \d+\/600 \d+% · \d+ queued again/);
    expect(r.err).toMatch(/\r\x1b\[K$/);
    await waitFor(async () => (await svc.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where} AND status <> 'dead'`)).rows[0].n === 0, 30_000);
    // The 100 of the --limit run had their second run already: now everyone has had one more.
    expect(await runsPerTask()).toEqual([{ runs: 2, n: N - 100 }, { runs: 3, n: 100 }]);

    // Not on a terminal: no progress at all.
    const quiet = await cli(['dlq', 'redrive', ...mine, '--json']);
    expect(quiet.err).toBe('');
    expect(JSON.parse(quiet.out)).toEqual({ matched: N, changed: N, calls: 2, limited: false });
  }, 60_000);

  it('the built bin under a real terminal draws the bar', async () => {
    await waitFor(async () => (await svc.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where} AND status <> 'dead'`)).rows[0].n === 0, 30_000);
    const main = path.resolve(__dirname, '../../dist/services/cli/main.js');
    const out = await new Promise<string>((resolve, reject) =>
      execFile('script', ['-qefc', `${process.execPath} ${main} dlq redrive ${mine.join(' ')} --dry-run && ${process.execPath} ${main} dlq redrive ${mine.join(' ')}`, '/dev/null'], { env: { PATH: process.env.PATH, TASK_SCHEDULER_URL: svc.url, TASK_SCHEDULER_KEY: TEST_KEY } }, (error, stdout) =>
        error ? reject(error) : resolve(stdout),
      ),
    );
    expect(out).toMatch(/600 dead task\(s\) match/);
    expect(out).toMatch(/\rredrive \[[#-]+\] \d+\/600/);
    expect(out).toMatch(/600 dead task\(s\) queued again/);
  }, 60_000);
});

describe('queues', () => {
  it('prints tables of the priorities and the workers, or the API answer with --json', async () => {
    const j = await cli(['queues', '--json']);
    expect(j.code).toBe(0);
    const answer = JSON.parse(j.out) as { workers: { slots: number }[] };
    expect(answer.workers).toEqual([expect.objectContaining({ slots: 8 })]);
    const h = await cli(['queues']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^PRIORITY/m);
    expect(h.out).toMatch(/^tenant default · \d+ running now · as of \S+\n\nPRIORITY +QUEUED +SCHEDULED +RETRYING +RUNNING +DEAD +CANCELLED +OLDEST_WAIT +IN\/MIN/);
    expect(h.out).toMatch(/^critical +\d+/m);
    expect(h.out).toMatch(/^WORKERS\nID +SLOTS\n\S+ +8\n$/m);
  });
});

describe('workflows', () => {
  it('the built bin submits a workflow from stdin; the worker runs it; get shows every step succeeded', async () => {
    const main = path.resolve(__dirname, '../../dist/services/cli/main.js');
    const env = { PATH: process.env.PATH, TASK_SCHEDULER_URL: svc.url, TASK_SCHEDULER_KEY: TEST_KEY };
    const body = JSON.stringify({ name: 'piped', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'echo', depends_on: ['a'] }, { key: 'c', type: 'noop', depends_on: ['a', 'b'] }] });
    const made = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [main, 'workflows', 'submit', '-'], { env }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
      child.stdin!.end(body);
    });
    expect(made).toMatchObject({ code: 0, stderr: '' });
    expect(made.stdout).toMatch(/^[0-9a-f-]{36} piped created: 3 step\(s\)\nKEY +TASK_ID\na +[0-9a-f-]{36}\nb +[0-9a-f-]{36}\nc +[0-9a-f-]{36}\n$/);
    const id = made.stdout.split(' ')[0]!;
    await waitFor(async () => (await client.getWorkflow(id)).workflow.status === 'succeeded', 20_000, 'the workflow to succeed');
    const shown = await cli(['workflows', 'get', id]);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/^c +succeeded +a,b +[0-9a-f-]{36} +noop +1/m);
    const listed = await cli(['workflows', 'list', '--status', 'succeeded', '--name', 'piped']);
    expect(listed.out).toMatch(new RegExp(`^${id} +piped +succeeded +3/3 +cancel_dependents`, 'm'));
    expectOneLine(await cli(['workflows', 'cancel', id]), 1, /is succeeded already.*\(HTTP 409\)/);
  });
});
