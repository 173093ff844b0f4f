/**
 * Every generated object is valid against the Kubernetes OpenAPI schemas and the CRD schemas
 * (prometheus-operator, KEDA), and the PrometheusRule groups pass `promtool check rules`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../../cdk8s/sources';
import { environment, synth } from './helpers';
import { validateObject } from './validate-models';

const variants = [
  ['dev', environment('dev')],
  ['dev with hpa', environment('dev', 'hpa')],
  ['prod', environment('prod')],
  ['prod with hpa', environment('prod', 'hpa')],
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

function promtool(): string {
  const has = () => {
    try {
      execFileSync('promtool', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!has()) {
    // Debian's `prometheus` package; scripts/prometheus-local.sh installs it without starting a server.
    const installer = path.join(REPO_ROOT, 'scripts/prometheus-local.sh');
    if (existsSync(installer)) execFileSync('bash', [installer, 'install'], { stdio: 'inherit' });
    else execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus'], { stdio: 'inherit' });
  }
  return 'promtool';
}

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
