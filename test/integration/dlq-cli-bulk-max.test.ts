/**
 * `dlq redrive` against an API whose BULK_MAX_LIMIT is below the CLI's redrive step (500) and its
 * counting calls (10,000), on real Postgres and Redis: the calls are sent again within the API's
 * bound, and every dead task is redriven (or counted) once.
 */
import { TaskSchedulerClient } from '../../services/client';
import { stackWithApi } from '../support/stack';
import { runCliCaptured } from '../support/cli-run';

const BULK_MAX = 40;
const DEAD = 130;

const fx = stackWithApi({ BULK_MAX_LIMIT: BULK_MAX });
beforeAll(async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url });
  for (let i = 0; i < DEAD; i += 10) await client.submitBatch(Array.from({ length: 10 }, () => ({ type: 'noop' })));
  // Out of the queue (cancelled), then recorded dead: a dead-letter queue of DEAD tasks.
  let cursor: string | undefined;
  for (;;) {
    const r = await client.bulkCancel({ filter: { status: 'queued' }, cursor });
    if (!r.has_more) break;
    cursor = r.next_cursor ?? undefined;
  }
  await fx.stack.pool.query("UPDATE tasks SET status = 'dead'");
});

const cli = (...argv: string[]) => runCliCaptured(argv, { TASK_SCHEDULER_URL: fx.api.url });
const statuses = async () => Object.fromEntries((await fx.stack.pool.query('SELECT status, count(*)::int AS n FROM tasks GROUP BY status')).rows.map((r) => [r.status, r.n]));

it('--dry-run with a --limit above BULK_MAX_LIMIT counts up to it', async () => {
  const r = await cli('dlq', 'redrive', '--limit', '100', '--dry-run', '--json');
  expect(r).toMatchObject({ code: 0, err: '' });
  expect(JSON.parse(r.out)).toEqual({ matched: 100, changed: 0, has_more: true, dry_run: true });
  expect(await statuses()).toEqual({ dead: DEAD });
});

it('a redrive goes in calls within BULK_MAX_LIMIT: --limit stops after N, then the rest', async () => {
  const first = await cli('dlq', 'redrive', '--limit', '50', '--json');
  expect(first).toMatchObject({ code: 0, err: '' });
  expect(JSON.parse(first.out)).toMatchObject({ matched: 50, changed: 50, limited: true });
  expect(await statuses()).toEqual({ dead: DEAD - 50, queued: 50 });

  const rest = await cli('dlq', 'redrive', '--json');
  expect(rest).toMatchObject({ code: 0, err: '' });
  expect(JSON.parse(rest.out)).toMatchObject({ matched: DEAD - 50, changed: DEAD - 50, limited: false });
  expect(await statuses()).toEqual({ queued: DEAD });
});
