/**
 * The worker starts with the same node flags everywhere it is started (services/worker/node-flags.ts);
 * the image's CMD is checked by test/k8s/dockerfile.test.ts, the tests' processes take them from spawnService.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WORKER_NODE_FLAGS, WORKER_SCRIPT } from '../../services/worker/node-flags';

const read = (file: string) => readFileSync(path.resolve(__dirname, '../..', file), 'utf8');
const command = ['node', ...WORKER_NODE_FLAGS, WORKER_SCRIPT];

it('npm start and npm run worker', () => {
  const started = read('scripts/start.sh').split('\n').filter((l) => l.includes(WORKER_SCRIPT));
  expect(started).toHaveLength(1);
  expect(started[0]).toContain(command.join(' '));
  expect((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.worker).toBe(command.join(' '));
});
