/**
 * An API URL with a user or password in it: fetch refuses every request to it, so it is refused
 * before anything is sent (the CLI: exit 2; the client: a TypeError), never retried as a lost
 * connection, and the password is not repeated in the message.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TaskSchedulerClient } from '../../services/client';
import { runCliCaptured } from '../support/cli-run';

let server: http.Server;
let requests = 0;
let origin: string;
beforeAll(async () => {
  server = http.createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"tasks":[],"next_cursor":null}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCliCaptured(argv, env);

it('the CLI: --api or TASK_SCHEDULER_URL with a password is a usage error (exit 2) that does not print it', async () => {
  const viaOption = await cli(['tasks', 'list', '--api', `http://ops:s3cret-pw@${origin}`]);
  expect(viaOption).toMatchObject({ code: 2, out: '' });
  expect(viaOption.err).toMatch(/^task-scheduler: --api must not carry a user or password \(http:\/\/127\.0\.0\.1:\d+\).*\n$/);
  expect(viaOption.err).not.toContain('s3cret-pw');
  const viaEnv = await cli(['queues'], { TASK_SCHEDULER_URL: `http://ops:s3cret-pw@${origin}` });
  expect(viaEnv).toMatchObject({ code: 2, out: '' });
  expect(viaEnv.err).toMatch(/^task-scheduler: TASK_SCHEDULER_URL must not carry a user or password/);
  expect(viaEnv.err).not.toContain('s3cret-pw');
  expect(requests).toBe(0);
  // The same server without the user and password answers.
  expect(await cli(['tasks', 'list', '--api', `http://${origin}`, '--json'])).toMatchObject({ code: 0, err: '' });
});

it('the client: a TypeError at construction, without the password', () => {
  expect(() => new TaskSchedulerClient({ baseUrl: `http://ops:s3cret-pw@${origin}` })).toThrow(/^baseUrl must not carry a user or password \(http:\/\/127\.0\.0\.1:\d+\)/);
  expect(() => new TaskSchedulerClient({ baseUrl: `http://ops@${origin}` })).toThrow(TypeError);
});
