/**
 * The CLI's API commands (tasks, dlq, queues) against the built api and worker processes: output
 * (tables, --json), exit statuses (0 done, 1 refused or failed, 2 bad usage) and one-line messages.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { TaskSchedulerClient } from '../../services/client';
import { runCli } from '../../services/cli/main';
import { createKey } from '../../services/core/tenancy/key-store';
import { TEST_KEY } from '../support/auth';
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

interface Run {
  code: number;
  out: string;
  err: string;
}
async function cli(argv: string[], env: Record<string, string> = {}, tty = false): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { TASK_SCHEDULER_URL: svc.url, TASK_SCHEDULER_KEY: TEST_KEY, ...env }, { out: (t) => (out += t), err: (t) => (err += t), tty });
  return { code, out, err };
}
/** A failure is one line on stderr and nothing on stdout. */
function expectOneLine(r: Run, code: number, message: RegExp): void {
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
    expect(h.out).toMatch(/^RUNS\nATTEMPT +OUTCOME +WORKER_ID/m);
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
    expect(r.out).toBe(`${dead.id} queued\n`);
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
    [['tasks', 'list', '--status', 'lost'], /--status must be one of queued, running/],
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
