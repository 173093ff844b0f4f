/**
 * skaffold.yaml is valid against Skaffold's v4beta14 schema (the vendored subset in
 * cdk8s/schemas/) and consistent with the Dockerfile and the dev manifests it deploys.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../../cdk8s/sources';
import { stages } from './dockerfile-model';
// Type-only: `npm test`'s tsc checks the generator this test runs as a child process.
import type * as _schemaBuilder from '../../cdk8s/schemas/build-skaffold-subset';

const schema = JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk8s/schemas/skaffold-v4beta14.subset.json'), 'utf8'));
const config = parse(readFileSync(path.join(REPO_ROOT, 'skaffold.yaml'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

test('skaffold.yaml uses the current config version and validates against its schema', () => {
  expect(config.apiVersion).toBe('skaffold/v4beta14');
  expect(config.kind).toBe('Config');
  const ok = validate(config);
  expect(validate.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
});

test('the vendored schema is what cdk8s/schemas/build-skaffold-subset.ts writes', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-skaffold-'));
  try {
    const out = path.join(dir, 'schema.json');
    execFileSync(process.execPath, ['--import', 'tsx', 'cdk8s/schemas/build-skaffold-subset.ts', out], { cwd: REPO_ROOT });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(schema);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the schema rejects what Skaffold rejects (v1-style deploy.kubectl.manifests, unknown keys)', () => {
  const old = structuredClone(config);
  old.deploy.kubectl.manifests = ['k8s/*.yaml'];
  expect(validate(old)).toBe(false);
  const typo = structuredClone(config);
  typo.build.artifacts[0].docker.targt = 'api';
  expect(validate(typo)).toBe(false);
  const mixed = structuredClone(config);
  mixed.build.cluster = {};
  expect(validate(mixed)).toBe(false);
});

test('it builds the three Dockerfile targets as the images the dev manifests run', () => {
  const targets = [...stages().keys()];
  const artifacts = config.build.artifacts as { image: string; docker: { dockerfile: string; target: string } }[];
  expect(artifacts.map((a) => [a.image, a.docker.target])).toEqual([
    ['task-scheduler-api', 'api'],
    ['task-scheduler-worker', 'worker'],
    ['task-scheduler-migrator', 'migrator'],
  ]);
  for (const a of artifacts) expect(targets).toContain(a.docker.target);

  const manifests = config.manifests.rawYaml as string[];
  expect(manifests).toEqual(['charts/manifests/dev.yaml']);
  const objects = manifests.flatMap((m) => parseAllDocuments(readFileSync(path.join(REPO_ROOT, m), 'utf8')).map((d) => d.toJS()));
  const images = new Set(
    objects.flatMap((o) => [...(o.spec?.template?.spec?.containers ?? []), ...(o.spec?.template?.spec?.initContainers ?? [])].map((c: { image: string }) => c.image.split(':')[0])),
  );
  for (const a of artifacts) expect(images).toContain(a.image);

  // Port-forwards and the Job hook name what the manifests contain.
  for (const pf of config.portForward) {
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === pf.resourceName);
    expect(svc?.metadata.namespace).toBe(pf.namespace);
    expect(svc?.spec.ports.map((p: { port: number }) => p.port)).toContain(pf.port);
  }
  const job = objects.find((o) => o.kind === 'Job');
  const hook = config.deploy.kubectl.hooks.before[0].host.command.join(' ');
  expect(hook).toContain(`app.kubernetes.io/component=${job.metadata.labels['app.kubernetes.io/component']}`);
  expect(hook).toContain(`--namespace ${job.metadata.namespace}`);
});

test('the kind profile targets the cluster scripts/kind-up.sh creates and never pushes', () => {
  const kind = config.profiles.find((p: { name: string }) => p.name === 'kind');
  expect(kind.patches).toEqual([
    { op: 'add', path: '/build/local/push', value: false },
    { op: 'add', path: '/deploy/kubeContext', value: 'kind-task-scheduler' },
  ]);
  expect(readFileSync(path.join(REPO_ROOT, 'scripts/kind-up.sh'), 'utf8')).toContain('CLUSTER_NAME=${CLUSTER_NAME:-task-scheduler}');
});
