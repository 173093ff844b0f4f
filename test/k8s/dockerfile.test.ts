/** The Dockerfile lints clean (dockerfile-utils) and keeps the properties Kubernetes relies on. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from 'dockerfile-utils';
import { REPO_ROOT } from '../../cdk8s/sources';
import { WORKER_NODE_FLAGS } from '../../services/worker/node-flags';
import { copyArgs, last, readDockerfile, stageChain, stages } from './dockerfile-model';

const all = stages();

test('dockerfile-utils finds no problem', () => {
  expect(validate(readDockerfile())).toEqual([]);
});

describe.each(['api', 'worker', 'migrator'])('target %s', (target) => {
  const chain = stageChain(all, target);

  test('runs node under tini, through the heap entrypoint, as the numeric non-root user 10001', () => {
    expect(last(chain, 'USER')).toBe('10001:10001');
    expect(JSON.parse(last(chain, 'ENTRYPOINT')!)).toEqual(['/usr/bin/tini', '--', '/bin/sh', '/app/scripts/node-heap-entrypoint.sh']);
    expect(JSON.parse(last(chain, 'CMD')!)).toEqual(['node', ...(target === 'worker' ? WORKER_NODE_FLAGS : []), `dist/services/${target}/main.js`]);
    expect(last(chain, 'STOPSIGNAL')).toBe('SIGTERM');
    expect(last(chain, 'WORKDIR')).toBe('/app');
  });

  test('installs production dependencies only and writes nothing at run time', () => {
    const runtime = chain.flatMap((s) => s.instructions);
    expect(runtime.filter((i) => i.keyword === 'RUN' && /npm (ci|install)/.test(i.args))).toEqual([]);
    const copied = runtime.filter((i) => i.keyword === 'COPY' && i.flags.from === 'deps');
    expect(copied.map((i) => copyArgs(i).sources)).toEqual([['/app/node_modules']]);
    const deps = all.get('deps')!.instructions.filter((i) => i.keyword === 'RUN');
    expect(deps.every((i) => /npm ci --omit=dev --ignore-scripts/.test(i.args))).toBe(true);
    // Files are owned by root; the user only needs to read them (readOnlyRootFilesystem).
    expect(runtime.filter((i) => i.keyword === 'COPY' && i.flags.chown !== undefined)).toEqual([]);
  });
});

test('the heap entrypoint is copied to where ENTRYPOINT runs it, and node gets its heap limit from it, not from a fixed flag', () => {
  const runtime = all.get('runtime')!.instructions;
  const copy = runtime.find((i) => i.keyword === 'COPY' && copyArgs(i).sources.includes('scripts/node-heap-entrypoint.sh'));
  expect(copy && copyArgs(copy).dest).toBe('./scripts/');
  expect(last([all.get('runtime')!], 'WORKDIR')).toBe('/app');
  for (const target of ['api', 'worker', 'migrator']) {
    const chain = stageChain(all, target);
    expect(last(chain, 'CMD')).not.toMatch(/max[-_]old[-_]space/);
    expect(chain.flatMap((s) => s.instructions).filter((i) => i.keyword === 'ENV' && /NODE_OPTIONS/.test(i.args))).toEqual([]);
  }
});

test('.dockerignore is an allow-list that lets every COPY source through', () => {
  const lines = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  expect(lines[0]).toBe('*');
  const allowed = lines.slice(1).map((l) => {
    expect(l.startsWith('!')).toBe(true);
    return l.slice(1).replace(/\/$/, '');
  });
  const contextSources = [...all.values()]
    .flatMap((s) => s.instructions)
    .filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)
    .flatMap((i) => copyArgs(i).sources);
  for (const src of contextSources) expect({ src, allowed: allowed.some((a) => src === a || src.startsWith(`${a}/`)) }).toEqual({ src, allowed: true });
});
