/**
 * Every generated object is valid against the Kubernetes OpenAPI schemas and the CRD schemas
 * (prometheus-operator, KEDA), and the PrometheusRule groups pass `promtool check rules`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { EnvironmentSettings } from '../../cdk8s/settings';
import { environment, synth } from './helpers';
import { promtool } from './promtool';
import { validateObject } from './validate-models';

const scaledToZero = (env: EnvironmentSettings): EnvironmentSettings => ({ ...env, worker: { ...env.worker, minReplicas: 0 } });

const variants = [
  ['dev', environment('dev')],
  ['dev with hpa', environment('dev', 'hpa')],
  ['dev scaling to zero', scaledToZero(environment('dev'))],
  ['prod', environment('prod')],
  ['prod with hpa', environment('prod', 'hpa')],
  ['prod scaling to zero', scaledToZero(environment('prod'))],
] as const;

describe.each(variants)('%s', (_name, env) => {
  const objects = synth(env);

  test('every object validates against its schema', () => {
    const problems = objects.flatMap((o) => validateObject(o));
    expect(problems).toEqual([]);
  });
});

test('the validator does reject a broken object (so the test above can fail)', () => {
  const so = synth(environment('dev')).find((o) => o.kind === 'ScaledObject')!;
  const broken = { ...so, spec: { ...so.spec, minReplicaCount: 'one', triggers: [{ metadata: {} }] } };
  expect(validateObject(broken)).toEqual(
    expect.arrayContaining([expect.stringContaining('/spec/minReplicaCount must be integer'), expect.stringContaining('must have required property type')]),
  );
});

test('the PrometheusRule groups pass promtool check rules', () => {
  const rules = synth(environment('prod')).filter((o) => o.kind === 'PrometheusRule');
  expect(rules.length).toBeGreaterThan(0);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-rules-'));
  try {
    const files = rules.map((r) => {
      const file = path.join(dir, `${r.metadata.name}.yml`);
      writeFileSync(file, stringify({ groups: r.spec.groups }));
      return file;
    });
    const out = execFileSync(promtool(), ['check', 'rules', ...files], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
