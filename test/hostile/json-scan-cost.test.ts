/**
 * What reading a body costs grows with its size, not with its size squared: bodies built to make a
 * naive check quadratic (a string of escapes, a number with a long run of zeros) are read in one
 * pass. The checks run in a child process with a deadline far beyond what one pass takes (well under
 * a second here): a quadratic read of these bodies takes minutes, and an in-process one could not be
 * interrupted. Uses the build under dist/ (`npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const READ_JSON = path.resolve(__dirname, '../../dist/services/api/input/read-json.js');

/** Runs `body` (JavaScript; `readJson` is dist's read-json module) in a child; returns what it printed. */
function inChild(body: string): string {
  const code = `const readJson = require(${JSON.stringify(READ_JSON)});\n${body}`;
  const res = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000, maxBuffer: 1 << 20 });
  if (res.error || res.status !== 0) throw new Error(`the child ${res.error ? `failed: ${res.error.message}` : `exited ${res.status} (${res.signal ?? 'no signal'})`}\n${res.stderr}`);
  return res.stdout.trim();
}

const problemFields = `(fn) => { try { fn(); return 'accepted'; } catch (e) { return JSON.stringify(e.errors.map((x) => x.field)); } }`;

it('16 MiB of escaped strings are read in one pass, and kept exactly', () => {
  // s: escapes and no quote for 12 MiB; t: escaped quotes and backslashes among them.
  const out = inChild(`
    const payload = { s: 'a\\n'.repeat(4_200_000), t: 'a\\n"\\\\'.repeat(600_000) };
    const body = readJson.parseTaskBody(Buffer.from(JSON.stringify({ type: 'noop', payload })), { maxPayloadDepth: 64 });
    console.log(body.payload.s === payload.s && body.payload.t === payload.t ? 'same' : 'changed', Buffer.byteLength(JSON.stringify(payload)));
  `);
  const [same, bytes] = out.split(' ');
  expect(same).toBe('same');
  expect(Number(bytes)).toBeGreaterThan(16 << 20);
});

it('numbers with a million zeros inside are read in one pass, and refused or kept as a double holds them', () => {
  const out = inChild(`
    const zeros = '0'.repeat(1_000_000);
    const check = ${problemFields};
    const limits = { maxPayloadDepth: 64 };
    const task = (n) => Buffer.from('{"type":"noop","payload":{"n":' + n + '}}');
    console.log(JSON.stringify([
      check(() => readJson.parseTaskBody(task('1.' + zeros + '1'), limits)),
      check(() => readJson.parseTaskBody(task('1' + zeros + '1'), limits)),
      check(() => readJson.parseTaskBody(task('0.' + zeros + '1'), limits)),
      check(() => readJson.parseTaskBody(task('1.' + zeros), limits)),
      check(() => readJson.parseTaskBody(task('-0.' + zeros + 'e5'), limits)),
    ]));
  `);
  expect(JSON.parse(out)).toEqual(['["payload.n"]', '["payload.n"]', '["payload.n"]', 'accepted', 'accepted']);
});
