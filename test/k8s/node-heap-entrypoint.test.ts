/**
 * scripts/node-heap-entrypoint.sh against fake cgroup trees (v2 and v1 layouts, limits and no
 * limits) and a fake `node` that prints its pid, arguments and NODE_OPTIONS.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../cdk8s/sources';

const SCRIPT = path.join(REPO_ROOT, 'scripts/node-heap-entrypoint.sh');
const MiB = 1048576;
let dir: string;
let fakeNode: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'node-heap-'));
  mkdirSync(path.join(dir, 'bin'));
  fakeNode = path.join(dir, 'bin', 'node');
  writeFileSync(fakeNode, '#!/bin/sh\necho "pid=$$"\necho "NODE_OPTIONS=${NODE_OPTIONS:-}"\nfor a in "$@"; do echo "arg=$a"; done\n');
  chmodSync(fakeNode, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A cgroup tree holding `files` (path relative to the root → content). */
function cgroup(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(dir, 'cg-'));
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  }
  return root;
}

/** Runs the script as the image does (sh script cmd…); what the fake node saw. */
function run(root: string, args: string[], env: Record<string, string> = {}): { pid: number; args: string[]; nodeOptions: string; status: number | null } {
  const res = spawnSync('/bin/sh', [SCRIPT, ...args], { env: { PATH: `${path.dirname(fakeNode)}:/usr/bin:/bin`, NODE_HEAP_CGROUP_ROOT: root, ...env }, encoding: 'utf8' });
  const lines = res.stdout.split('\n');
  return {
    pid: Number(lines.find((l) => l.startsWith('pid='))?.slice(4)),
    args: lines.filter((l) => l.startsWith('arg=')).map((l) => l.slice(4)),
    nodeOptions: lines.find((l) => l.startsWith('NODE_OPTIONS='))?.slice(13) ?? '',
    status: res.status,
  };
}

const app = ['dist/services/worker/main.js', 'an argument with spaces'];

test('cgroup v2: 75 % of memory.max, before the script, arguments kept as they were', () => {
  const root = cgroup({ 'memory.max': `${768 * MiB}\n` });
  expect(run(root, ['node', ...app]).args).toEqual(['--max-old-space-size=576', ...app]);
  expect(run(root, [fakeNode, ...app]).args).toEqual(['--max-old-space-size=576', ...app]);
  // Also without a trailing newline.
  expect(run(cgroup({ 'memory.max': String(512 * MiB) }), ['node', ...app]).args).toEqual(['--max-old-space-size=384', ...app]);
});

test('cgroup v1: memory/memory.limit_in_bytes', () => {
  expect(run(cgroup({ 'memory/memory.limit_in_bytes': `${256 * MiB}\n` }), ['node', ...app]).args).toEqual(['--max-old-space-size=192', ...app]);
});

test.each([
  ['v2 unlimited', { 'memory.max': 'max\n' }],
  ['v1 unlimited', { 'memory/memory.limit_in_bytes': '9223372036854771712\n' }],
  ['no cgroup files', {}],
  ['an empty file', { 'memory.max': '' }],
])('no limit (%s): node starts with its default heap', (_, files) => {
  expect(run(cgroup(files), ['node', ...app]).args).toEqual(app);
});

test('a heap limit already given (NODE_OPTIONS or node flags) is left alone', () => {
  const root = cgroup({ 'memory.max': `${768 * MiB}\n` });
  expect(run(root, ['node', ...app], { NODE_OPTIONS: '--enable-source-maps --max-old-space-size=300' })).toMatchObject({
    args: app,
    nodeOptions: '--enable-source-maps --max-old-space-size=300',
  });
  expect(run(root, ['node', '--max_old_space_size=200', ...app]).args).toEqual(['--max_old_space_size=200', ...app]);
  // Other NODE_OPTIONS do not count, and neither does the app's own argument of that name.
  expect(run(root, ['node', ...app], { NODE_OPTIONS: '--enable-source-maps' })).toMatchObject({ args: ['--max-old-space-size=576', ...app], nodeOptions: '--enable-source-maps' });
  expect(run(root, ['node', 'main.js', '--max-old-space-size=1']).args).toEqual(['--max-old-space-size=576', 'main.js', '--max-old-space-size=1']);
});

test('NODE_HEAP_PERCENT changes the fraction; nonsense falls back to 75', () => {
  const root = cgroup({ 'memory.max': `${1000 * MiB}\n` });
  expect(run(root, ['node', 'x.js'], { NODE_HEAP_PERCENT: '50' }).args).toEqual(['--max-old-space-size=500', 'x.js']);
  for (const bad of ['0', '101', 'lots']) expect(run(root, ['node', 'x.js'], { NODE_HEAP_PERCENT: bad }).args).toEqual(['--max-old-space-size=750', 'x.js']);
});

test('other commands run unchanged', () => {
  const res = spawnSync('/bin/sh', [SCRIPT, 'sh', '-c', 'echo "$0:$1"', 'a b'], { env: { PATH: '/usr/bin:/bin', NODE_HEAP_CGROUP_ROOT: cgroup({ 'memory.max': `${768 * MiB}\n` }) }, encoding: 'utf8' });
  expect(res.stdout).toBe('a b:\n');
});

test('node replaces the script (exec), so tini signals node itself', () => {
  const res = spawnSync('/bin/sh', ['-c', `echo "shell=$$"; exec /bin/sh "${SCRIPT}" node x.js`], {
    env: { PATH: `${path.dirname(fakeNode)}:/usr/bin:/bin`, NODE_HEAP_CGROUP_ROOT: cgroup({ 'memory.max': `${768 * MiB}\n` }) },
    encoding: 'utf8',
  });
  const shell = /shell=(\d+)/.exec(res.stdout)?.[1];
  expect(res.stdout).toContain(`pid=${shell}\n`);
});
