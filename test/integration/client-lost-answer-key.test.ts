/**
 * A submission whose every answer was lost (the API created it, the client never heard): the
 * ConnectionError carries the idempotency key the client generated, so the caller can send it
 * again with that key and get the first task or workflow back instead of creating a second.
 */
import { ConnectionError, TaskSchedulerClient } from '../../services/client';
import { apiBehindLossyProxy } from '../support/lossy-proxy';

const fx = apiBehindLossyProxy();

const count = async (table: string) => (await fx.stack.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
const client = () => new TaskSchedulerClient({ baseUrl: fx.proxy.url, retry: { maxRetries: 1, baseDelayMs: 10 } });

it('submit: the ConnectionError names the generated key, and a send with it makes no second task', async () => {
  fx.proxy.dropAnswers(2);
  const err = await client().submit({ type: 'noop' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  expect(await count('tasks')).toBe(1);
  const key = (err as ConnectionError).idempotencyKey;
  expect(key).toMatch(/^client-[0-9a-f-]{36}$/);
  const again = await client().submit({ type: 'noop', idempotency_key: key });
  expect(again.created).toBe(false);
  expect(await count('tasks')).toBe(1);
});

it('submitBatch: the ConnectionError names each item\'s key, in order', async () => {
  const before = await count('tasks');
  fx.proxy.dropAnswers(2);
  const err = await client().submitBatch([{ type: 'noop' }, { type: 'noop', idempotency_key: 'mine-1' }]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  const keys = (err as ConnectionError).idempotencyKeys!;
  expect(keys).toEqual([expect.stringMatching(/^client-/), 'mine-1']);
  const again = await client().submitBatch([{ type: 'noop', idempotency_key: keys[0] }, { type: 'noop', idempotency_key: keys[1] }]);
  expect(again.results.map((r) => r.status)).toEqual([200, 200]);
  expect(await count('tasks')).toBe(before + 2);
});

it('submitWorkflow: the ConnectionError names the generated key, and a send with it makes no second workflow', async () => {
  const wf = { name: 'lost', tasks: [{ key: 'a', type: 'noop' }] };
  fx.proxy.dropAnswers(2);
  const err = await client().submitWorkflow(wf).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  expect(await count('workflows')).toBe(1);
  const key = (err as ConnectionError).idempotencyKey!;
  const again = await client().submitWorkflow(wf, { idempotencyKey: key });
  expect(again.created).toBe(false);
  expect(await count('workflows')).toBe(1);
});
