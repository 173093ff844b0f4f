/**
 * The committed output under charts/ is exactly what `npm run synth` makes from the sources today,
 * and the Helm chart, rendered with its default values, is exactly the prod manifests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { synthEnvironment } from '../../cdk8s/chart';
import { HELM_DIR, MANIFESTS_DIR, renderOutputs, writeOutputs } from '../../cdk8s/synth';
import { REPO_ROOT } from '../../cdk8s/sources';
import { environment, sources } from './helpers';
import { renderObjects, type RenderContext } from './helm-render';
// Type-only: `npm test`'s tsc checks the CLI this test runs as a child process.
import type * as _synthCli from '../../cdk8s/main';

function listFiles(root: string, dir: string): string[] {
  const abs = path.join(root, dir);
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(root, path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe('generated output', () => {
  let out: string;
  beforeAll(() => {
    out = mkdtempSync(path.join(os.tmpdir(), 'k8s-synth-'));
    // What `npm run synth` runs, writing to the temp dir instead of the repository.
    execFileSync(process.execPath, ['--import', 'tsx', 'cdk8s/main.ts', '--out', out], { cwd: REPO_ROOT, stdio: 'pipe' });
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  test('charts/ matches a fresh synth (run `npm run synth` and commit charts/ when this fails)', () => {
    const fresh = listFiles(out, 'charts').sort();
    expect(listFiles(REPO_ROOT, 'charts').sort()).toEqual(fresh);
    for (const file of fresh) {
      expect({ file, content: readFileSync(path.join(REPO_ROOT, file), 'utf8') }).toEqual({ file, content: readFileSync(path.join(out, file), 'utf8') });
    }
  });

  test('the CLI writes exactly what renderOutputs returns', () => {
    const files = renderOutputs(sources());
    for (const [file, content] of Object.entries(files)) expect({ file, same: readFileSync(path.join(out, file), 'utf8') === content }).toEqual({ file, same: true });
    // writeOutputs removes generated files that are no longer produced.
    const again = mkdtempSync(path.join(os.tmpdir(), 'k8s-synth-'));
    try {
      writeOutputs(again, { ...files, 'charts/task-scheduler/templates/stale.yaml': 'x' });
      writeOutputs(again, files);
      expect(listFiles(again, 'charts').sort()).toEqual(Object.keys(files).sort());
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });

  test('the manifests parse back to the synthesized objects', () => {
    for (const env of ['dev', 'prod'] as const) {
      const docs = parseAllDocuments(readFileSync(path.join(out, MANIFESTS_DIR, `${env}.yaml`), 'utf8')).map((d) => d.toJS());
      expect(docs).toEqual(JSON.parse(JSON.stringify(synthEnvironment(environment(env), sources()))));
    }
  });

  describe('Helm chart', () => {
    const values = () => parse(readFileSync(path.join(out, HELM_DIR, 'values.yaml'), 'utf8'));
    const render = (ctx: RenderContext) =>
      readdirSync(path.join(out, HELM_DIR, 'templates'))
        .sort()
        .flatMap((f) => renderObjects(readFileSync(path.join(out, HELM_DIR, 'templates', f), 'utf8'), ctx));
    const byKey = (objects: Record<string, any>[]) =>
      Object.fromEntries(objects.filter((o) => o.kind !== 'Namespace').map((o) => [`${o.kind}/${o.metadata.name}`, o]));

    test('rendered with its default values equals the prod manifests', () => {
      const prod = environment('prod');
      const rendered = render({ Values: values(), Release: { Namespace: prod.namespace } });
      expect(byKey(rendered)).toEqual(byKey(JSON.parse(JSON.stringify(synthEnvironment(prod, sources())))));
    });

    test('autoscaling.kind=hpa renders the HPA variant', () => {
      const prod = environment('prod', 'hpa');
      const v = values();
      v.autoscaling.kind = 'hpa';
      const rendered = render({ Values: v, Release: { Namespace: prod.namespace } });
      expect(byKey(rendered)).toEqual(byKey(JSON.parse(JSON.stringify(synthEnvironment(prod, sources())))));
    });

    test('values reach the objects: image tag, namespace, replicas, ingress, settings', () => {
      const v = values();
      v.image.tag = '1.2.3';
      v.api.replicas = 7;
      v.ingress.host = 'tasks.internal';
      v.config.LOG_LEVEL = 'debug';
      const objects = byKey(render({ Values: v, Release: { Namespace: 'ts-staging' } }));
      const api = objects['Deployment/task-scheduler-api']!;
      expect(api.metadata.namespace).toBe('ts-staging');
      expect(api.spec.replicas).toBe(7);
      expect(api.spec.template.spec.containers[0].image).toBe('registry.example.com/task-scheduler/task-scheduler-api:1.2.3');
      expect(objects['Job/task-scheduler-migrate-1-2-3']).toBeDefined();
      expect(objects['Ingress/task-scheduler-api']!.spec.rules[0].host).toBe('tasks.internal');
      expect(objects['ConfigMap/task-scheduler-worker-config']!.data.LOG_LEVEL).toBe('debug');
      expect(objects['ScaledObject/task-scheduler-worker']!.spec.triggers[0].metadata.query).toContain('namespace="ts-staging"');
    });

    test('autoscaling values reach both kinds: the target wait, WORKER_POOL in the PromQL, scale to zero', () => {
      const prod = environment('prod');
      const v = values();
      v.autoscaling.targetOldestWaitSeconds = 45;
      v.config.WORKER_POOL = '16';
      v.worker.minReplicas = 0;
      const env = { ...prod, worker: { ...prod.worker, minReplicas: 0 }, autoscaling: { ...prod.autoscaling, targetOldestWaitSeconds: 45 }, config: { ...prod.config, WORKER_POOL: '16' } };
      const rendered = render({ Values: v, Release: { Namespace: prod.namespace } });
      expect(byKey(rendered)).toEqual(byKey(JSON.parse(JSON.stringify(synthEnvironment(env, sources())))));
      const so = byKey(rendered)['ScaledObject/task-scheduler-worker']!;
      expect(so.spec.minReplicaCount).toBe(0);
      expect(so.spec.triggers[1].metadata).toMatchObject({ threshold: '45', query: expect.stringContaining('>= 16 * max(workers_alive{') });

      v.autoscaling.kind = 'hpa';
      v.worker.minReplicas = 1;
      const hpaEnv = { ...env, worker: { ...env.worker, minReplicas: 1 }, autoscaling: { ...env.autoscaling, kind: 'hpa' as const } };
      const hpa = render({ Values: v, Release: { Namespace: prod.namespace } });
      expect(byKey(hpa)).toEqual(byKey(JSON.parse(JSON.stringify(synthEnvironment(hpaEnv, sources())))));
      expect(byKey(hpa)['ConfigMap/task-scheduler-prometheus-adapter']!.data['config.yaml']).toContain('>= 16 * max(workers_alive{<<.LabelMatchers>>})');
    });

    test('values.schema.json accepts the defaults and scale to zero with KEDA, and refuses it with the HPA', () => {
      const schema = JSON.parse(readFileSync(path.join(out, HELM_DIR, 'values.schema.json'), 'utf8'));
      const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
      const v = values();
      expect(validate(v)).toBe(true);
      v.worker.minReplicas = 0;
      expect(validate(v)).toBe(true);
      v.autoscaling.kind = 'hpa';
      expect(validate(v)).toBe(false);
      expect(validate.errors).toContainEqual(expect.objectContaining({ instancePath: '/worker/minReplicas', message: 'must be >= 1' }));
      v.worker.minReplicas = 1;
      v.autoscaling.targetOldestWaitSeconds = 0;
      expect(validate(v)).toBe(false);
      expect(validate.errors).toContainEqual(expect.objectContaining({ instancePath: '/autoscaling/targetOldestWaitSeconds' }));
    });
  });
});
