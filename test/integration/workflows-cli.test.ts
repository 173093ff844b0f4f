/**
 * `task-scheduler workflows …` against an API on real Postgres and Redis: submit from a file or
 * stdin (ids printed, --json, replay with the same key), list with filters, get (the step table),
 * cancel; a bad file exits 2 with one line naming the step and sends nothing, the service's
 * refusals exit 1 with the problem's detail.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stackWithApi, waitFor } from '../support/stack';
import type { Worker } from '../../services/worker/worker';
import { CliRun, runCliCaptured } from '../support/cli-run';

const fx = stackWithApi({ POLL_INTERVAL_MS: 10 });
const dir = mkdtempSync(path.join(tmpdir(), 'wf-cli-'));

const cli = (argv: string[], stdin?: string) => runCliCaptured(['workflows', ...argv], { TASK_SCHEDULER_URL: fx.api.url }, { stdin: stdin ?? '' });
function file(name: string, body: unknown): string {
  const p = path.join(dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
  return p;
}
/** A failure is one line on stderr and nothing on stdout. */
function expectOneLine(r: CliRun, code: number, message: RegExp): void {
  expect({ code: r.code, out: r.out }).toEqual({ code, out: '' });
  expect(r.err).toMatch(/^task-scheduler: [^\n]*\n$/);
  expect(r.err).toMatch(message);
}
const workflows = async () => (await fx.stack.pool.query('SELECT count(*)::int AS n FROM workflows')).rows[0].n as number;

const ETL = {
  name: 'nightly-etl',
  tasks: [
    { key: 'extract', type: 'noop' },
    { key: 'clean', type: 'noop', depends_on: ['extract'] },
    { key: 'load', type: 'noop', depends_on: ['clean'] },
  ],
};

it('submits a file, prints the workflow and its step tasks, and gets the step table once it ran', async () => {
  const made = await cli(['submit', file('etl.json', ETL)]);
  expect(made).toMatchObject({ code: 0, err: '' });
  const [head, columns, ...rows] = made.out.trimEnd().split('\n');
  expect(head).toMatch(/^[0-9a-f-]{36} nightly-etl created: 3 step\(s\)$/);
  expect(columns).toMatch(/^KEY\s+TASK_ID$/);
  expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(['extract', 'clean', 'load']);
  const id = head!.split(' ')[0]!;

  const { worker } = fx.startWorker();
  try {
    await waitFor(async () => (await fx.stack.pool.query('SELECT status FROM workflows WHERE id = $1', [id])).rows[0].status === 'succeeded', 20_000, 'the workflow to succeed');
  } finally {
    await (worker as Worker).stop(0);
  }
  const shown = await cli(['get', id]);
  expect(shown.code).toBe(0);
  expect(shown.out).toMatch(new RegExp(`^id +${id}$`, 'm'));
  expect(shown.out).toMatch(/^status +succeeded$/m);
  expect(shown.out).toMatch(/^steps +3\/3 final; succeeded 3$/m);
  expect(shown.out).toMatch(/^STEPS\nKEY +STATUS +DEPENDS_ON +TASK_ID +TYPE +ATTEMPTS +CANCELLED_BY +LAST_ERROR$/m);
  expect(shown.out).toMatch(/^extract +succeeded +- +[0-9a-f-]{36} +noop +1/m);
  expect(shown.out).toMatch(/^load +succeeded +clean +[0-9a-f-]{36}/m);
  const asJson = JSON.parse((await cli(['get', id.toUpperCase(), '--json'])).out);
  expect(asJson.workflow).toMatchObject({ id, status: 'succeeded', counts: { succeeded: 3 } });
  expect(asJson.steps.map((s: { depends_on: string[] }) => s.depends_on)).toEqual([[], ['extract'], ['clean']]);

  expectOneLine(await cli(['cancel', id]), 1, new RegExp(`workflow ${id} is succeeded already; only a running workflow can be cancelled \\(HTTP 409\\)`));
});

it('submits from stdin with --json, replays the same key, and cancels', async () => {
  const body = JSON.stringify({ ...ETL, name: 'from-stdin' });
  const made = await cli(['submit', '-', '--json', '--idempotency-key', 'stdin-1'], body);
  expect(made.code).toBe(0);
  const answer = JSON.parse(made.out);
  expect(answer.workflow).toMatchObject({ name: 'from-stdin', idempotency_key: 'stdin-1', status: 'running' });
  expect(answer.steps).toHaveLength(3);
  const again = await cli(['submit', '-', '--idempotency-key', 'stdin-1'], body);
  expect(again.out).toMatch(new RegExp(`^${answer.workflow.id} from-stdin already submitted with this idempotency key`));
  const changed = await cli(['submit', '-', '--idempotency-key', 'stdin-1'], JSON.stringify({ ...ETL, name: 'changed' }));
  expectOneLine(changed, 1, /idempotency key was already used with a different request .*\(HTTP 409\)/);

  const cancelled = await cli(['cancel', answer.workflow.id]);
  expect(cancelled).toMatchObject({ code: 0, err: '', out: `${answer.workflow.id} cancelled: 3 step(s) cancelled, 0 running step(s) asked to stop\n` });
});

it('lists newest first with filters, a table or --json, and says how to carry on', async () => {
  for (const name of ['l-one', 'l-two', 'l-three']) expect((await cli(['submit', file(`${name}.json`, { ...ETL, name })])).code).toBe(0);
  const listed = await cli(['list', '--status', 'running', '--limit', '2']);
  expect(listed.code).toBe(0);
  expect(listed.out).toMatch(/^ID\s+NAME\s+STATUS\s+STEPS_DONE\s+ON_FAILURE\s+CREATED_AT\s+FINISHED_AT\n/);
  expect(listed.out.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[1])).toEqual(['l-three', 'l-two']);
  expect(listed.out).toMatch(/l-three\s+running\s+0\/3\s+cancel_dependents/);
  expect(listed.err).toMatch(/^more workflows: add --cursor \S+\n$/);
  const cursor = listed.err.trim().split(' ').pop()!;
  const rest = JSON.parse((await cli(['list', '--status', 'running', '--cursor', cursor, '--json'])).out);
  expect(rest.workflows.map((w: { name: string }) => w.name)).toEqual(['l-one']);
  expect(rest.next_cursor).toBeNull();
  const named = JSON.parse((await cli(['list', '--name', 'l-two', '--created-after', '1h', '--json'])).out);
  expect(named.workflows.map((w: { name: string }) => w.name)).toEqual(['l-two']);
});

it.each([
  [['submit'], /missing the workflow FILE/],
  [['submit', '/nonexistent/wf.json'], /cannot read \/nonexistent\/wf.json: ENOENT/],
  [['submit', 'BAD_JSON'], /is not JSON/],
  [['submit', 'CYCLE'], /cycle.json: tasks\[0\]\.depends_on forms a cycle: a -> b -> a \(usage/],
  [['submit', 'UNKNOWN_DEP'], /tasks\[1\]\.depends_on step "b" depends on "ghost", which is not a step of the workflow/],
  // Payloads the API refuses for what it could not hold exactly, named as the API names them.
  [['submit', 'HUGE_NUMBER'], /huge.json: tasks\[0\]\.payload\.n .*(?:number|precision|range)/],
  [['submit', 'NUL'], /nul.json: tasks\[0\]\.payload\.s /],
  [['submit', 'ETL', '--idempotency-key', 'has space'], /Idempotency-Key must be 1-255 printable ASCII characters/],
  [['list', '--status', 'done'], /--status must be one of running, succeeded, failed, cancelled/],
  [['list', '--name', 'a b'], /--name must be a workflow name/],
  [['list', '--limit', '0'], /--limit must be a whole number from 1/],
  [['get', 'not-an-id'], /ID must be a workflow id \(a UUID\)/],
  [['cancel'], /missing the workflow ID/],
  [['frobnicate'], /unknown workflows subcommand "frobnicate"/],
  [[], /workflows needs a subcommand/],
])('exits 2 on %j, naming the problem, sending nothing', async (argv, message) => {
  const files: Record<string, string> = {
    BAD_JSON: file('bad.json', '{"name":'),
    CYCLE: file('cycle.json', { name: 'c', tasks: [{ key: 'a', type: 'noop', depends_on: ['b'] }, { key: 'b', type: 'noop', depends_on: ['a'] }] }),
    UNKNOWN_DEP: file('unknown.json', { name: 'u', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['ghost'] }] }),
    ETL: file('etl2.json', ETL),
    HUGE_NUMBER: file('huge.json', '{"name":"h","tasks":[{"key":"a","type":"noop","payload":{"n":1e400}}]}'),
    NUL: file('nul.json', '{"name":"z","tasks":[{"key":"a","type":"noop","payload":{"s":"a\\u0000b"}}]}'),
  };
  const before = await workflows();
  expectOneLine(await cli(argv.map((a) => files[a] ?? a)), 2, message);
  expect(await workflows()).toBe(before);
});

it('exits 1 with the detail of a 404', async () => {
  expectOneLine(await cli(['get', '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b']), 1, /no workflow with id 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b \(HTTP 404\)/);
});
