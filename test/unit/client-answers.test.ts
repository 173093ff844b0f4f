/**
 * The typed client refuses a 2xx answer that is not what the contract says (a ResponseError), as
 * README's "TypeScript client" promises, rather than handing its caller a body it cannot use.
 */
import { ResponseError, TaskSchedulerClient } from '../../services/client';

const answering = (status: number, body: string) =>
  new TaskSchedulerClient({ baseUrl: 'http://127.0.0.1:1', fetch: (async () => new Response(body, { status, headers: { 'content-type': 'application/json' } })) as typeof fetch });

it.each(['null', '[]', '{"tasks":[]}', '{"tenant":"acme","priorities":null,"workers":[]}'])('queues() answered 200 with %s is a ResponseError', async (body) => {
  await expect(answering(200, body).queues()).rejects.toBeInstanceOf(ResponseError);
});

it('queues() passes a well-formed answer through', async () => {
  const q = { tenant: 'acme', priorities: {}, running_now: 0, workers: [], as_of: '2026-12-07T00:00:00.000Z' };
  await expect(answering(200, JSON.stringify(q)).queues()).resolves.toEqual(q);
});
