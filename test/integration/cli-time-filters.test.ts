/**
 * --created-after and --created-before of tasks list, dlq and workflows list against an API on real
 * Postgres: a date that does not exist is refused (exit 2), not rolled over to another, and a bound
 * keeps its microseconds (creation times are stored to the microsecond and both bounds are exclusive).
 */
import { TaskSchedulerClient } from '../../services/client';
import { stackWithApi } from '../support/stack';
import { runCliCaptured } from '../support/cli-run';

const fx = stackWithApi();
let client: TaskSchedulerClient;
beforeAll(() => {
  client = new TaskSchedulerClient({ baseUrl: fx.api.url });
});

const cli = (...argv: string[]) => runCliCaptured(argv, { TASK_SCHEDULER_URL: fx.api.url });

it.each([
  ['tasks', 'list', '--created-after', '2026-02-30'],
  ['tasks', 'list', '--created-before', '2026-02-29T10:00:00Z'],
  ['tasks', 'list', '--created-after', '2026-04-31T08:00'],
  ['tasks', 'list', '--created-after', '2026-01-01T24:00:00Z'],
  ['tasks', 'list', '--created-after', '0000-06-01'],
  ['dlq', 'redrive', '--created-after', '2026-02-30', '--dry-run'],
  ['workflows', 'list', '--created-before', '2025-02-29'],
])('%s %s %s %s: a date that does not exist exits 2, nothing sent', async (...argv) => {
  const r = await cli(...argv);
  expect({ code: r.code, out: r.out }).toEqual({ code: 2, out: '' });
  expect(r.err).toMatch(/^task-scheduler: --created-(after|before) must be an RFC 3339 time .*\n$/);
});

it('a bound keeps its microseconds: --created-after a task\'s own creation time leaves it out', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await client.submit({ type: 'microtimed' })).task.id);
  // Three tasks within one millisecond, as a busy API creates them.
  for (const [i, id] of ids.entries()) await fx.stack.pool.query('UPDATE tasks SET created_at = $2 WHERE id = $1', [id, `2026-03-01T10:00:00.12345${i + 1}Z`]);
  const listed = async (...filters: string[]) => {
    const r = await cli('tasks', 'list', '--type', 'microtimed', ...filters, '--json');
    expect(r).toMatchObject({ code: 0, err: '' });
    return (JSON.parse(r.out) as { tasks: { id: string }[] }).tasks.map((t) => t.id).reverse();
  };
  expect(await listed('--created-after', '2026-03-01T10:00:00.123451Z')).toEqual(ids.slice(1));
  expect(await listed('--created-before', '2026-03-01T10:00:00.123453Z')).toEqual(ids.slice(0, 2));
  expect(await listed('--created-after', '2026-03-01T10:00:00.123451Z', '--created-before', '2026-03-01T10:00:00.123453Z')).toEqual([ids[1]]);
  // The same instant with an offset, and a time without a zone (UTC).
  expect(await listed('--created-after', '2026-03-01T11:00:00.123452+01:00')).toEqual(ids.slice(2));
  expect(await listed('--created-after', '2026-03-01T10:00:00.123452')).toEqual(ids.slice(2));
  expect(await listed('--created-after', '2026-03-01')).toEqual(ids);
  // Bounds a microsecond apart with nothing between are no window at all; the CLI says so.
  expect((await cli('tasks', 'list', '--created-after', '2026-03-01T10:00:00.123452Z', '--created-before', '2026-03-01T10:00:00.123452Z')).code).toBe(2);
  expect((await cli('tasks', 'list', '--created-after', '2026-03-01T10:00:00.123451Z', '--created-before', '2026-03-01T10:00:00.123453Z')).code).toBe(0);
});

it.each([
  ['tasks', 'list'],
  ['dlq', 'list'],
  ['dlq', 'redrive', '--dry-run'],
  ['workflows', 'list'],
])('%s %s: --created-after not earlier than --created-before exits 2, nothing sent (not an empty list)', async (...argv) => {
  await client.submitWorkflow({ name: 'in-range', tasks: [{ key: 'a', type: 'noop' }] });
  for (const [after, before] of [['1d', '2d'], ['2026-03-01T10:00:00.123456Z', '2026-03-01T10:00:00.123456Z']]) {
    const r = await cli(...argv, '--created-after', after!, '--created-before', before!);
    expect(r).toEqual({ code: 2, out: '', err: 'task-scheduler: --created-after must be earlier than --created-before (usage: task-scheduler help)\n' });
  }
});
