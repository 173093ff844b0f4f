/**
 * `task-scheduler schedules …` against an API on real Postgres and Redis: create, list, get with a
 * preview, pause, resume, trigger, delete; bad input exits 2 with one line and sends nothing, the
 * service's refusals exit 1 with the problem's detail.
 */
import { stackWithApi } from '../support/stack';
import { runCliCaptured } from '../support/cli-run';

const fx = stackWithApi();

const cli = (...argv: string[]) => runCliCaptured(['schedules', ...argv], { TASK_SCHEDULER_URL: fx.api.url });
const schedules = async () => (await fx.stack.pool.query('SELECT name, paused FROM schedules ORDER BY name')).rows as { name: string; paused: boolean }[];

it('creates, lists, shows, pauses, resumes, triggers and deletes a schedule', async () => {
  const made = await cli('create', 'nightly-report', '--cron', '30 2 * * *', '--timezone', 'Europe/Berlin', '--type', 'report.build', '--payload', '{"scope":"all"}', '--priority', 'high', '--max-retries', '2', '--misfire', 'catch_up', '--catch-up-limit', '5', '--overlap', 'skip');
  expect(made).toMatchObject({ code: 0, err: '' });
  expect(made.out).toMatch(/^nightly-report created; next tick \d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z\n$/);

  const listed = await cli('list');
  expect(listed.out).toMatch(/^NAME\s+CRON\s+TIMEZONE\s+TYPE\s+STATE\s+NEXT_TICK/);
  expect(listed.out).toMatch(/nightly-report\s+30 2 \* \* \*\s+Europe\/Berlin\s+report\.build\s+active/);
  const asJson = JSON.parse((await cli('list', '--json')).out) as { schedules: { name: string; task: Record<string, unknown>; misfire: string; catch_up_limit: number }[] };
  expect(asJson.schedules).toMatchObject([{ name: 'nightly-report', task: { type: 'report.build', payload: { scope: 'all' }, priority: 'high', max_retries: 2 }, misfire: 'catch_up', catch_up_limit: 5 }]);

  const shown = await cli('get', 'nightly-report', '--preview', '3');
  expect(shown.code).toBe(0);
  expect(shown.out).toMatch(/^name\s+nightly-report$/m);
  expect(shown.out).toMatch(/^misfire\s+catch_up \(at most 5\)$/m);
  expect(shown.out.match(/^\S+Z\s+\d{4}-\d\d-\d\dT02:30:00\+0[12]:00$/gm)).toHaveLength(3);
  const detail = JSON.parse((await cli('get', 'nightly-report', '--json')).out) as { next_ticks: unknown[] };
  expect(detail.next_ticks).toHaveLength(5);

  expect((await cli('pause', 'nightly-report')).out).toBe('nightly-report paused\n');
  expect(await schedules()).toEqual([{ name: 'nightly-report', paused: true }]);
  expect((await cli('get', 'nightly-report')).out).toContain('NEXT TICKS (if resumed now)');
  expect((await cli('resume', 'nightly-report')).out).toMatch(/^nightly-report resumed; next tick \S+Z \(ticks missed while paused are not run\)\n$/);
  expect(await schedules()).toEqual([{ name: 'nightly-report', paused: false }]);

  const fired = await cli('trigger', 'nightly-report');
  expect(fired.out).toMatch(/^[0-9a-f-]{36} queued\n$/);
  const id = fired.out.split(' ')[0]!;
  expect((await fx.stack.pool.query('SELECT schedule, scheduled_for, type FROM tasks WHERE id = $1', [id])).rows[0]).toEqual({ schedule: 'nightly-report', scheduled_for: null, type: 'report.build' });
  expect((await cli('get', 'nightly-report')).out).toMatch(new RegExp(`^LAST RUNS\\n.*\\n${id}\\s+\\w+\\s+\\(trigger\\)`, 'm'));

  expect((await cli('delete', 'nightly-report')).out).toBe('nightly-report deleted (its tasks stay)\n');
  expect(await schedules()).toEqual([]);
  const gone = await cli('delete', 'nightly-report');
  expect(gone).toMatchObject({ code: 1, out: '' });
  expect(gone.err).toBe('task-scheduler: no schedule named nightly-report (HTTP 404)\n');
});

it.each([
  [['create', 'x', '--type', 'noop'], /create needs --cron/],
  [['create', 'x', '--cron', '* * * * *'], /create needs --type/],
  [['create', 'x', '--cron', '61 * * * *', '--type', 'noop'], /^task-scheduler: --cron: cron '61 \* \* \* \*' is not valid/],
  [['create', 'x', '--cron', '* * * * *', '--timezone', 'Mars/Base', '--type', 'noop'], /--timezone: timezone 'Mars\/Base' is not an IANA/],
  [['create', 'x', '--cron', '* * * * *', '--type', 'noop', '--payload', '{bad'], /--payload must be JSON/],
  [['create', 'x', '--cron', '* * * * *', '--type', 'noop', '--payload', '{"n":12345678901234567890}'], /--payload: n .*(?:integer|precision|2\^53)/],
  [['create', 'x', '--cron', '* * * * *', '--type', 'noop', '--misfire', 'later'], /--misfire must be one of skip, run_once, catch_up/],
  [['create', 'x', '--cron', '* * * * *', '--type', 'noop', '--catch-up-limit', '0'], /--catch-up-limit must be a whole number from 1 to 1000/],
  [['create', 'has space', '--cron', '* * * * *', '--type', 'noop'], /NAME must be 1-128/],
  [['get', 'x', '--preview', '101'], /--preview must be a whole number from 1 to 100/],
  [['pause'], /missing the schedule NAME/],
  [['frobnicate'], /unknown schedules subcommand "frobnicate"/],
  [[], /schedules needs a subcommand/],
])('exits 2 on %j, naming the problem, sending nothing', async (argv, message) => {
  const r = await cli(...argv);
  expect(r.code).toBe(2);
  expect(r.out).toBe('');
  expect(r.err).toMatch(message);
  expect(r.err.split('\n')).toHaveLength(2);
  expect(await schedules()).toEqual([]);
});

it("exits 1 with the API's detail when it refuses (a duplicate, an unknown schedule)", async () => {
  expect((await cli('create', 'dup', '--cron', '@daily', '--type', 'noop', '--paused')).code).toBe(0);
  expect(await schedules()).toEqual([{ name: 'dup', paused: true }]);
  const again = await cli('create', 'dup', '--cron', '@daily', '--type', 'noop');
  expect(again).toMatchObject({ code: 1, err: 'task-scheduler: a schedule named dup exists already (HTTP 409)\n' });
  expect(await cli('trigger', 'nope')).toMatchObject({ code: 1, err: 'task-scheduler: no schedule named nope (HTTP 404)\n' });
  expect((await cli('delete', 'dup')).code).toBe(0);
});
