/**
 * `workflows submit` without --idempotency-key whose every answer is lost (the API created the
 * workflow, the CLI never heard): the failure names the key the CLI sent, so running it again with
 * that key is answered with the workflow already made instead of creating a second one.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { apiBehindLossyProxy } from '../support/lossy-proxy';
import { runCliCaptured } from '../support/cli-run';

const fx = apiBehindLossyProxy();

const cli = (...argv: string[]) => runCliCaptured(['workflows', ...argv], { TASK_SCHEDULER_URL: fx.proxy.url });
const workflows = async () => (await fx.stack.pool.query('SELECT count(*)::int AS n FROM workflows')).rows[0].n as number;

it('names the key it sent when no answer came, and a run with that key makes no second workflow', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'wf-lost-')), 'etl.json');
  writeFileSync(file, JSON.stringify({ name: 'lost-answer', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }] }));
  // The CLI's send and its three retries: each is answered by the API (the first creates the workflow), and each answer is lost.
  fx.proxy.dropAnswers(4);
  const lost = await cli('submit', file);
  expect(fx.proxy.dropped()).toBe(4);
  expect({ code: lost.code, out: lost.out }).toEqual({ code: 1, out: '' });
  expect(lost.err).toMatch(/^task-scheduler: POST \/workflows to .*; it may have been created: run again with --idempotency-key (cli-[0-9a-f-]{36}) to submit it at most once\n$/);
  expect(await workflows()).toBe(1);

  const key = /--idempotency-key (\S+)/.exec(lost.err)![1]!;
  const again = await cli('submit', file, '--idempotency-key', key);
  expect(again.code).toBe(0);
  expect(again.out).toMatch(/^[0-9a-f-]{36} lost-answer already submitted with this idempotency key/);
  expect(await workflows()).toBe(1);
});
