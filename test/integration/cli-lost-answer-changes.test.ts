/**
 * Changes the API takes no idempotency key for (schedules trigger, tasks retry, schedules create
 * and delete) whose answer was lost: the API acted, the CLI never heard. The failure says the
 * action may have happened and what to check, rather than inviting a plain re-run (a second
 * trigger makes a second task).
 */
import { TaskSchedulerClient } from '../../services/client';
import { apiBehindLossyProxy } from '../support/lossy-proxy';
import { runCliCaptured } from '../support/cli-run';

const fx = apiBehindLossyProxy();

const cli = (...argv: string[]) => runCliCaptured(argv, { TASK_SCHEDULER_URL: fx.proxy.url });
const scheduleTasks = async (name: string) => (await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks WHERE schedule = $1', [name])).rows[0].n as number;

it('schedules create, trigger and delete: a lost answer says it may have happened', async () => {
  fx.proxy.dropAnswers(1);
  const created = await cli('schedules', 'create', 'lost-1', '--cron', '0 0 1 1 *', '--type', 'noop');
  expect(fx.proxy.dropped()).toBe(1);
  expect(created).toMatchObject({ code: 1, out: '' });
  expect(created.err).toMatch(/^task-scheduler: POST \/schedules to .*; it may have been created: see schedules get lost-1 before running create again\n$/);

  fx.proxy.dropAnswers(1);
  const triggered = await cli('schedules', 'trigger', 'lost-1');
  expect(triggered).toMatchObject({ code: 1, out: '' });
  expect(triggered.err).toMatch(/; a task may have been created: see LAST RUNS of schedules get lost-1 before triggering again\n$/);
  expect(await scheduleTasks('lost-1')).toBe(1);

  fx.proxy.dropAnswers(1);
  const deleted = await cli('schedules', 'delete', 'lost-1');
  expect(deleted).toMatchObject({ code: 1, out: '' });
  expect(deleted.err).toMatch(/; it may have been deleted: see schedules get lost-1\n$/);
});

it('tasks retry: a lost answer says the task may have been queued again', async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url });
  const { task } = await client.submit({ type: 'noop', delay_ms: 3_600_000 });
  await client.cancel(task.id);
  fx.proxy.dropAnswers(1);
  const retried = await cli('tasks', 'retry', task.id);
  expect(retried).toMatchObject({ code: 1, out: '' });
  expect(retried.err).toMatch(new RegExp(`; it may have been queued again: see tasks get ${task.id} before retrying again\\n$`));
  expect((await client.get(task.id)).status).not.toBe('cancelled');
});

it('dlq redrive: a lost answer says dead tasks may have been queued again', async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await client.submit({ type: 'lost-redrive' })).task.id);
  await client.bulkCancel({ filter: { type: 'lost-redrive' } });
  await fx.stack.pool.query("UPDATE tasks SET status = 'dead' WHERE type = 'lost-redrive'");
  // The count (a dry run) is answered; the redrive's answer is lost.
  fx.proxy.dropAnswers(1, 1);
  const r = await cli('dlq', 'redrive', '--type', 'lost-redrive');
  expect(r).toMatchObject({ code: 1, out: '' });
  expect(r.err).toMatch(/^task-scheduler: POST \/tasks\/retry to .*; dead tasks may have been queued again before it failed: see dlq list, and run redrive again to carry on \(it takes only tasks still dead\)\n$/);
  const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE type = 'lost-redrive' AND status = 'queued'");
  expect(rows[0].n).toBe(3);
});
