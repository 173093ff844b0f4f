/**
 * The built CLI writing to a pipe whose reader has gone (`task-scheduler help | false`): it ends
 * quietly, without the stack trace of an unhandled EPIPE.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createTestDatabase, TestDatabase } from '../support/test-env';

const main = path.resolve(__dirname, '../../dist/services/cli/main.js');
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** Runs the CLI with its stdout's reader closed at once; its status and stderr. */
function withReaderGone(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { env: { PATH: process.env.PATH, POSTGRES_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

it.each([[['help']], [['tenants', 'list']]])('%j into a closed pipe: exit 0, nothing on stderr', async (args) => {
  expect(await withReaderGone(args)).toEqual({ code: 0, stderr: '' });
});
