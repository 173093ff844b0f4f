/**
 * `task-scheduler help` lists, for each API subcommand, exactly the options it takes: an option
 * in its line is accepted (never "Unknown option"), and one from another command's line that it
 * does not show is refused. --api and --key are every API command's (help's API line).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runCliCaptured } from '../support/cli-run';

// Answers every request at once: an accepted option whose command is sent gets a 404, not a wait.
let api: http.Server;
let url: string;
beforeAll(async () => {
  api = http.createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such thing' }));
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => api.close(r)));

const cli = (argv: string[]) => runCliCaptured(argv, { TASK_SCHEDULER_URL: url });

const ID = '00000000-0000-7000-8000-000000000000';
/** Each API subcommand, with the positionals it needs. */
const COMMANDS: [string, string[]][] = [
  ['tasks list', []],
  ['tasks get', [ID]],
  ['tasks cancel', [ID]],
  ['tasks retry', [ID]],
  ['dlq list', []],
  ['dlq redrive', []],
  ['queues', []],
  ['schedules list', []],
  ['schedules get', ['nightly']],
  ['schedules create', ['nightly']],
  ['workflows submit', ['-']],
  ['workflows list', []],
  ['workflows get', [ID]],
  ['workflows cancel', [ID]],
];

it('each API subcommand takes the options its help line shows, and no other', async () => {
  const help = (await cli(['help'])).out;
  // A subcommand's line runs until the next line naming a subcommand (a wrapped line is its own).
  const lines = help.split('\n');
  const shown = new Map<string, Set<string>>();
  for (const [name] of COMMANDS) {
    const at = lines.findIndex((l) => l.trim().startsWith(`${name} `) || l.trim() === name);
    expect(at).toBeGreaterThanOrEqual(0);
    let text = lines[at]!;
    for (let i = at + 1; i < lines.length && /^\s{5,}\[/.test(lines[i]!); i++) text += lines[i];
    shown.set(name, new Set(text.match(/--[a-z-]+/g) ?? []));
  }
  const every = new Set([...shown.values()].flatMap((s) => [...s]));
  const wrong: string[] = [];
  for (const [name, positionals] of COMMANDS) {
    for (const option of every) {
      const r = await cli([...name.split(' '), ...positionals, option, 'x']);
      const unknown = r.err.includes(`Unknown option '${option}'`);
      if (unknown === shown.get(name)!.has(option)) wrong.push(`${name} ${option}: ${unknown ? 'refused but shown' : 'taken but not shown'}`);
    }
  }
  expect(wrong).toEqual([]);
}, 60_000);
