/**
 * Text a task brought (a handler's error) or an admin typed (a key's description) reaches the
 * operator's terminal through the CLI's tables and fields: control characters in it are shown
 * escaped, never drawn (no cursor moves, retitled windows or rewritten lines); --json keeps it exact.
 */
import { TaskSchedulerClient } from '../../services/client';
import { stackWithApi, waitFor } from '../support/stack';
import { runCliCaptured } from '../support/cli-run';

// OSC retitles the window, CSI clears the screen, \r rewrites the line, U+009B is an 8-bit CSI, U+202E reverses what follows.
const HOSTILE = 'upstream said: \x1b]0;owned\x07\x1b[2J\rall good\u009b31m \u202Edesrever\nsecond line';
const RAW = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/;

const fx = stackWithApi({ POLL_INTERVAL_MS: 10 });
beforeAll(() => {
  fx.startWorker({
    handlers: {
      hostile: async () => {
        throw new Error(HOSTILE);
      },
    },
  });
});

const cli = (...argv: string[]) => runCliCaptured(argv, { TASK_SCHEDULER_URL: fx.api.url, POSTGRES_URL: fx.stack.dbUrl });

it("a handler's error with control characters is shown escaped by tasks get and tasks list, exact with --json", async () => {
  const client = new TaskSchedulerClient({ baseUrl: fx.api.url });
  const { task } = await client.submit({ type: 'hostile', max_retries: 0 });
  await waitFor(async () => (await client.get(task.id)).status === 'dead', 15_000, 'the task to die');

  const shown = await cli('tasks', 'get', task.id);
  expect(shown.code).toBe(0);
  expect(shown.out).not.toMatch(RAW);
  expect(shown.out).toContain('upstream said: \\u001b]0;owned\\u0007\\u001b[2J\\u000dall good\\u009b31m \\u202edesrever\nsecond line');
  expect(shown.out).toMatch(/^RUNS\nATTEMPT +OUTCOME/m);

  const listed = await cli('tasks', 'list', '--type', 'hostile');
  expect(listed.code).toBe(0);
  expect(listed.out).not.toMatch(RAW);
  // A header and one row: the error stays in its cell.
  expect(listed.out.trimEnd().split('\n')).toHaveLength(2);
  expect(listed.out).toContain('\\u001b]0;owned');

  const asJson = await cli('tasks', 'get', task.id, '--json');
  expect(asJson.out).not.toMatch(RAW);
  expect(JSON.parse(asJson.out).last_error).toBe(HOSTILE);
}, 30_000);

it("a key's description with control characters stays in its cell of keys list", async () => {
  const made = await cli('keys', 'create', '--tenant', 'hostile', '--scopes', 'tasks:read', '--description', HOSTILE);
  expect(made.code).toBe(0);
  const listed = await cli('keys', 'list', '--tenant', 'hostile');
  expect(listed.code).toBe(0);
  expect(listed.out).not.toMatch(RAW);
  expect(listed.out.trimEnd().split('\n')).toHaveLength(2);
  expect(listed.out).toContain('\\u000dall good');
  const asJson = await cli('keys', 'list', '--tenant', 'hostile', '--json');
  expect(JSON.parse(asJson.out)[0].description).toBe(HOSTILE);
});
