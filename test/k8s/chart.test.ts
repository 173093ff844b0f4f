/**
 * What the synthesized manifests must say: images, probes, ports, credentials from the Secret,
 * the autoscaler's target and metric, the ingress path, grace periods and security contexts.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { SETTINGS, type SettingName } from '../../services/core/config/config';
import { ADAPTER_CONFIGMAP, leasesAndRetriesQuery, OLDEST_WAIT_METRIC, oldestWaitQuery, QUEUE_DEPTH_METRIC, scalingBehaviour } from '../../cdk8s/lib/autoscaling';
import { KEDA_TRIGGERS } from '../../cdk8s/lib/names';
import { HEAP_PERCENT } from '../../cdk8s/lib/pods';
import { API_PRE_STOP_SECONDS } from '../../cdk8s/lib/workloads';
import { readSources, REPO_ROOT, schemaVersion, SECRET_SETTINGS, serviceConfig } from '../../cdk8s/sources';
import { allContainers, container, environment, find, synth, type K8sObject } from './helpers';

const dev = synth(environment('dev'));
const prod = synth(environment('prod'));
const devEnv = environment('dev');

describe.each([
  ['dev', dev, ''],
  ['prod', prod, 'registry.example.com/task-scheduler/'],
] as const)('%s manifests', (name, objects, registry) => {
  const env = environment(name);
  const api = find(objects, 'Deployment', 'task-scheduler-api');
  const worker = find(objects, 'Deployment', 'task-scheduler-worker');
  const job = objects.find((o) => o.kind === 'Job')!;

  test('run the three images with IfNotPresent pulls', () => {
    expect(container(api, 'api').image).toBe(`${registry}task-scheduler-api:${env.imageTag}`);
    expect(container(worker, 'worker').image).toBe(`${registry}task-scheduler-worker:${env.imageTag}`);
    expect(container(job, 'migrator').image).toBe(`${registry}task-scheduler-migrator:${env.imageTag}`);
    for (const { owner, c } of allContainers(objects)) expect({ owner, policy: c.imagePullPolicy }).toEqual({ owner, policy: 'IfNotPresent' });
  });

  test('the api serves on the ports its settings name, probed on /readyz and /healthz', () => {
    const cfg = serviceConfig(env, 'api').parsed;
    const c = container(api, 'api');
    expect(c.ports).toEqual([
      { name: 'http', containerPort: Number(cfg.API_ADDR.split(':').pop()) },
      { name: 'metrics', containerPort: Number(cfg.METRICS_ADDR.split(':').pop()) },
    ]);
    expect(c.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 8080 });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 2112 });
    expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', String(API_PRE_STOP_SECONDS)]);
    const svc = find(objects, 'Service', 'task-scheduler-api');
    expect(svc.spec.ports.map((p: { name: string; port: number }) => [p.name, p.port])).toEqual([['http', 8080], ['metrics', 2112]]);
    expect(svc.spec.selector).toEqual(api.spec.selector.matchLabels);
  });

  test('the worker exposes metrics on 2113 and is probed there', () => {
    const c = container(worker, 'worker');
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 2113 }]);
    expect(c.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 2113 });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 2113 });
    // The autoscaler owns the count; a replicas field would reset it on every apply.
    expect(worker.spec.replicas).toBeUndefined();
    const metricsSvc = find(objects, 'Service', 'task-scheduler-worker-metrics');
    expect(metricsSvc.spec).toMatchObject({ clusterIP: 'None', selector: worker.spec.selector.matchLabels });
  });

  test('grace periods outlast SHUTDOWN_GRACE_MS (plus the preStop pause for the api, WORKER_STOP_MARGIN_MS for the worker)', () => {
    const { SHUTDOWN_GRACE_MS: graceMs, WORKER_STOP_MARGIN_MS: marginMs } = serviceConfig(env, 'worker').parsed;
    expect(worker.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs + marginMs);
    expect(api.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs + API_PRE_STOP_SECONDS * 1000);
  });

  test('every setting a service reads is wired: ConfigMap for settings, Secret for credentials', () => {
    for (const [service, workload, cname] of [['api', api, 'api'], ['worker', worker, 'worker'], ['migrator', job, 'migrator']] as const) {
      const c = container(workload, cname);
      const cm = find(objects, 'ConfigMap', c.envFrom[0].configMapRef.name);
      const fromSecret = Object.fromEntries(c.env.filter((e: any) => e.valueFrom?.secretKeyRef).map((e: any) => [e.name, e.valueFrom.secretKeyRef]));
      const expected = (Object.keys(SETTINGS) as SettingName[]).filter((k) => SETTINGS[k].usedBy.includes(service));
      expect([...Object.keys(cm.data), ...Object.keys(fromSecret)].sort()).toEqual([...expected].sort());
      for (const key of SECRET_SETTINGS.filter((k) => expected.includes(k))) {
        // The bootstrap key has a Secret of its own, which the operator may leave out.
        const ref = key === 'BOOTSTRAP_ADMIN_KEY' ? { name: env.credentials.bootstrapSecretName, key, optional: true } : { name: env.credentials.secretNames[service], key };
        expect(fromSecret[key]).toEqual(ref);
        expect(cm.data[key]).toBeUndefined();
      }
    }
  });

  test('new pods wait for the schema version of the newest migration', () => {
    for (const [component, workload] of [['api', api], ['worker', worker]] as const) {
      const init = workload.spec.template.spec.initContainers;
      expect(init).toHaveLength(1);
      expect(init[0].image).toBe(workload.spec.template.spec.containers[0].image);
      expect(init[0].command.slice(0, 2)).toEqual(['node', '-e']);
      expect(init[0].command[2]).toContain('schema_migrations');
      const envs = Object.fromEntries(init[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      expect(envs.EXPECTED_SCHEMA_VERSION).toBe(String(schemaVersion()));
      expect(envs.POSTGRES_URL).toEqual({ secretKeyRef: { name: env.credentials.secretNames[component], key: 'POSTGRES_URL' } });
      // The same CA bundles as the main container, for a POSTGRES_URL that names sslrootcert.
      const caMount = (c: any) => (c.volumeMounts ?? []).filter((m: any) => m.name === 'ca');
      expect(caMount(init[0])).toEqual(caMount(workload.spec.template.spec.containers[0]));
    }
  });

  test('the migrator Job is named after the release and never restarts in place', () => {
    expect(job.metadata.name).toBe(`task-scheduler-migrate-${env.release.replace(/\./g, '-')}`);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    expect(job.spec.backoffLimit).toBeGreaterThan(0);
  });

  test('every node container gets NODE_OPTIONS with a heap of 75 % of its memory limit, following the limit in settings', () => {
    const stores = new Set(['postgres', 'redis']);
    const containers = allContainers(objects).filter(({ c }) => !stores.has(c.name));
    expect(containers.map(({ c }) => c.name).sort()).toEqual(['api', 'migrator', 'wait-for-schema', 'wait-for-schema', 'worker']);
    for (const { owner, c } of containers) {
      const limit = /^(\d+)Mi$/.exec(c.resources.limits.memory);
      expect({ owner, limit: c.resources.limits.memory }).toEqual({ owner, limit: expect.stringMatching(/^\d+Mi$/) });
      const heap = Math.floor((Number(limit![1]) * 75) / 100);
      expect({ owner, env: c.env.filter((e: any) => e.name === 'NODE_OPTIONS') }).toEqual({ owner, env: [{ name: 'NODE_OPTIONS', value: `--max-old-space-size=${heap}` }] });
    }
    expect(container(worker, 'worker').resources.limits.memory).toBe(`${env.worker.resources.memoryLimitMiB}Mi`);
    expect(container(api, 'api').resources.limits.memory).toBe(`${env.api.resources.memoryLimitMiB}Mi`);
  });

  test('every container runs restricted: non-root numeric user, read-only root with /tmp, no escalation, no capabilities', () => {
    const stores = new Set(['postgres', 'redis']);
    for (const { owner, c, pod } of allContainers(objects)) {
      const user = stores.has(c.name) ? 999 : 10001;
      expect({ owner, sc: c.securityContext }).toEqual({
        owner,
        sc: expect.objectContaining({ runAsNonRoot: true, runAsUser: user, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
      });
      expect({ owner, seccomp: pod.securityContext.seccompProfile }).toEqual({ owner, seccomp: { type: 'RuntimeDefault' } });
      const tmp = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
      expect({ owner, tmp: pod.volumes.find((v: any) => v.name === tmp?.name)?.emptyDir }).toEqual({ owner, tmp: expect.any(Object) });
      expect(c.resources.requests && c.resources.limits).toBeTruthy();
    }
    expect(find(objects, 'Namespace', env.namespace).metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  test('the ingress routes every public API path and the web console to the api with the configured class; health stays inside', () => {
    const ing = find(objects, 'Ingress', 'task-scheduler-api');
    expect(ing.spec.ingressClassName).toBe(env.ingress.className);
    const rule = ing.spec.rules[0];
    const backend = { service: { name: 'task-scheduler-api', port: { number: 8080 } } };
    // What the console (and the client, the CLI) call: it is served at UI_BASE_PATH and speaks these.
    const paths = ['/tasks', '/queues', '/schedules', '/workflows', '/admin', '/openapi.json', serviceConfig(env, 'api').parsed.UI_BASE_PATH];
    expect([...rule.http.paths].sort((a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path))).toEqual([...paths].sort().map((p) => ({ path: p, pathType: 'Prefix', backend })));
    expect(paths).not.toContain('/healthz');
    expect(paths).not.toContain('/readyz');
    if (env.ingress.host) {
      expect(rule.host).toBe(env.ingress.host);
      expect(ing.spec.tls).toEqual([{ hosts: [env.ingress.host], secretName: env.ingress.tlsSecretName }]);
    } else {
      expect(rule.host).toBeUndefined();
      expect(ing.spec.tls).toBeUndefined();
    }
  });

  test('KEDA scales the worker on queue depth and on the oldest wait, slowly down', () => {
    const so = find(objects, 'ScaledObject', 'task-scheduler-worker');
    expect(so.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'task-scheduler-worker' });
    expect(so.spec).toMatchObject({ minReplicaCount: env.worker.minReplicas, maxReplicaCount: env.worker.maxReplicas });
    const selector = `namespace="${env.namespace}",job="task-scheduler-api"`;
    const slots = serviceConfig(env, 'worker').parsed.WORKER_POOL;
    const meta = (query: string, threshold: number) => ({ serverAddress: env.autoscaling.prometheusUrl, query, threshold: String(threshold), activationThreshold: '0' });
    expect(so.spec.triggers).toEqual([
      {
        type: 'prometheus',
        name: 'queue-depth',
        metricType: 'AverageValue',
        metadata: meta(`(sum(max by (priority) (queue_depth_leasable{${selector}})) or sum(max by (priority) (queue_depth{${selector}})))`, env.autoscaling.tasksPerWorker),
      },
      {
        type: 'prometheus',
        name: 'oldest-wait',
        metricType: 'Value',
        metadata: meta(oldestWaitQuery(selector, { workerSlots: slots, targetOldestWaitSeconds: env.autoscaling.targetOldestWaitSeconds }), env.autoscaling.targetOldestWaitSeconds),
      },
      { type: 'prometheus', name: 'leases-and-retries', metricType: 'AverageValue', metadata: meta(leasesAndRetriesQuery(selector), 1) },
    ]);
    // The verify tool finds each trigger's metric (s<i>-prometheus) by this order.
    expect(so.spec.triggers.map((t: { name: string }) => t.name)).toEqual([...KEDA_TRIGGERS]);
    // WORKER_POOL of the workers' own ConfigMap is in the oldest-wait query.
    const workerConfig = find(objects, 'ConfigMap', 'task-scheduler-worker-config').data;
    expect(so.spec.triggers[1].metadata.query).toContain(`>= ${workerConfig.WORKER_POOL} * max(workers_alive{${selector}})`);
    expect(so.spec.triggers[1].metadata.query).toContain(`scalar(${env.autoscaling.targetOldestWaitSeconds} * (`);
    expect(so.spec.cooldownPeriod).toBe(env.autoscaling.scaleDownStabilizationSeconds);
    const hpaConfig = so.spec.advanced.horizontalPodAutoscalerConfig;
    expect(hpaConfig.name).toBe('task-scheduler-worker');
    expect(hpaConfig.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(120);
    expect(hpaConfig.behavior.scaleDown.policies).toEqual([{ type: 'Percent', value: 25, periodSeconds: 60 }]);
    expect(objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
  });

  test('monitoring: ServiceMonitors with the release label, one PrometheusRule per alerts file, dashboards for the sidecar', () => {
    for (const component of ['api', 'worker']) {
      const sm = find(objects, 'ServiceMonitor', `task-scheduler-${component}`);
      expect(sm.metadata.labels?.release).toBe(env.monitoring.releaseLabel);
      expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: env.monitoring.scrapeInterval, honorLabels: true }]);
    }
    const src = readSources();
    const rules = objects.filter((o) => o.kind === 'PrometheusRule');
    expect(rules.map((r) => r.spec.groups)).toEqual(src.ruleFiles.map((f) => f.groups));
    for (const r of rules) expect(r.metadata.labels?.release).toBe(env.monitoring.releaseLabel);
    const dashboards = objects.filter((o) => o.metadata.labels?.grafana_dashboard === '1');
    expect(dashboards.map((d) => Object.values(d.data)[0])).toEqual(src.dashboards.map((d) => d.json));
  });

  test('PodDisruptionBudgets and NetworkPolicies guard the api and workers', () => {
    expect(find(objects, 'PodDisruptionBudget', 'task-scheduler-api').spec).toEqual({ maxUnavailable: 1, selector: api.spec.selector });
    expect(find(objects, 'PodDisruptionBudget', 'task-scheduler-worker').spec.selector).toEqual(worker.spec.selector);
    expect(find(objects, 'NetworkPolicy', 'task-scheduler-default-deny-ingress').spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'], ingress: [] });
    const apiPolicy = find(objects, 'NetworkPolicy', 'task-scheduler-api').spec;
    expect(apiPolicy.ingress[0].from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': env.ingress.controllerNamespace } } }]);
  });

  test('names are stable: explicit, without construct-path hashes', () => {
    const text = JSON.stringify(objects);
    expect(text).not.toContain('cdk8s.io/metadata.addr');
    for (const o of objects) expect(o.metadata.name).toMatch(/^(task-scheduler(-[a-z0-9]+)*)$/);
  });
});

describe('environment differences', () => {
  test('dev runs Postgres and Redis in the namespace, reachable only from the app', () => {
    expect(dev.filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata.name)).toEqual(['task-scheduler-postgres', 'task-scheduler-redis']);
    const pg = find(dev, 'NetworkPolicy', 'task-scheduler-postgres').spec;
    expect(pg.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'task-scheduler' }, matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['api', 'worker', 'migrator'] }] } }],
        ports: [{ protocol: 'TCP', port: 5432 }],
      },
    ]);
    expect(find(dev, 'NetworkPolicy', 'task-scheduler-redis').spec.ingress[0].from[0].podSelector.matchExpressions[0].values).toEqual(['api', 'worker']);
    for (const component of ['api', 'worker', 'migrator'] as const) {
      const secret = find(dev, 'Secret', devEnv.credentials.secretNames[component]);
      expect(new URL(secret.stringData.POSTGRES_URL).host).toBe('task-scheduler-postgres:5432');
      expect(secret.metadata.labels?.['task-scheduler/dev-only-credentials']).toBe('true');
    }
    expect(find(dev, 'ConfigMap', 'task-scheduler-api-config').data.REDIS_ADDR).toBe('task-scheduler-redis:6379');
  });

  test('prod points at managed stores and creates no Secret', () => {
    expect(prod.filter((o) => ['StatefulSet', 'Secret'].includes(o.kind))).toEqual([]);
    expect(prod.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name)).not.toContain('task-scheduler-postgres');
  });

  test('the hpa choice renders an HPA on two External metrics and their prometheus-adapter rules instead of KEDA', () => {
    const env = environment('prod', 'hpa');
    const objects = synth(env);
    expect(objects.filter((o) => o.kind === 'ScaledObject')).toEqual([]);
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'task-scheduler-worker');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'task-scheduler-worker' });
    const metric = { selector: { matchLabels: { job: 'task-scheduler-api' } } };
    expect(hpa.spec.metrics).toEqual([
      { type: 'External', external: { metric: { name: QUEUE_DEPTH_METRIC, ...metric }, target: { type: 'AverageValue', averageValue: env.autoscaling.tasksPerWorker } } },
      { type: 'External', external: { metric: { name: OLDEST_WAIT_METRIC, ...metric }, target: { type: 'Value', value: env.autoscaling.targetOldestWaitSeconds } } },
    ]);
    expect(hpa.spec.minReplicas).toBe(env.worker.minReplicas);
    // The same pace as KEDA's HPA.
    expect(hpa.spec.behavior).toEqual(scalingBehaviour(env));
    const adapter = find(objects, 'ConfigMap', ADAPTER_CONFIGMAP);
    expect(adapter.metadata.namespace).toBe(env.monitoring.namespace);
    const rules = parse(adapter.data['config.yaml']).externalRules;
    expect(rules.map((r: any) => [r.seriesQuery, r.name])).toEqual([
      ['queue_depth{namespace!="",job="task-scheduler-api"}', { matches: '^queue_depth$', as: QUEUE_DEPTH_METRIC }],
      ['queue_oldest_task_age_seconds{namespace!="",job="task-scheduler-api"}', { matches: '^queue_oldest_task_age_seconds$', as: OLDEST_WAIT_METRIC }],
    ]);
    // With the adapter's LabelMatchers filled in as it fills them, the queries are KEDA's.
    const kedaTriggers = find(synth(environment('prod')), 'ScaledObject', 'task-scheduler-worker').spec.triggers;
    const filled = (q: string) => q.split('<<.LabelMatchers>>').join(`namespace="${env.namespace}",job="task-scheduler-api"`);
    expect(rules.map((r: any) => filled(r.metricsQuery))).toEqual(kedaTriggers.slice(0, 2).map((t: any) => t.metadata.query));
    expect(find(objects, 'Deployment', 'task-scheduler-worker').spec.replicas).toBeUndefined();
  });
});

describe('sources', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-sources-'));
    mkdirSync(path.join(dir, 'migrations'));
    mkdirSync(path.join(dir, 'alerts', 'tests'), { recursive: true });
    mkdirSync(path.join(dir, 'grafana', 'dashboards'), { recursive: true });
    writeFileSync(path.join(dir, 'migrations', '0001_a.sql'), '');
    writeFileSync(path.join(dir, 'migrations', '0007_b.sql'), '');
    writeFileSync(path.join(dir, 'alerts', 'queue.yml'), 'groups:\n  - name: q\n    rules:\n      - alert: QueueStuck\n        expr: vector(1)\n');
    writeFileSync(path.join(dir, 'alerts', 'tests', 'queue_test.yml'), 'rule_files: [../queue.yml]\n');
    writeFileSync(path.join(dir, 'grafana', 'dashboards', 'My Board.json'), '{"title":"x"}');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('are read from the tree at synth time: migrations, rule files (not their tests), dashboards', () => {
    const src = readSources(dir);
    expect(src.schemaVersion).toBe(7);
    expect(src.ruleFiles.map((f) => f.name)).toEqual(['queue']);
    const objects = synth(environment('dev'), src);
    expect(find(objects, 'PrometheusRule', 'task-scheduler-queue').spec.groups[0].rules[0].alert).toBe('QueueStuck');
    expect(find(objects, 'ConfigMap', 'task-scheduler-dashboard-my-board').data).toEqual({ 'My Board.json': '{"title":"x"}' });
    expect(find(objects, 'Deployment', 'task-scheduler-api').spec.template.spec.initContainers[0].env).toContainEqual({ name: 'EXPECTED_SCHEMA_VERSION', value: '7' });
  });

  test('a credential in an environment config is refused', () => {
    expect(() => serviceConfig({ ...devEnv, config: { REDIS_PASS: 'x' } }, 'api')).toThrow(/credential/);
    expect(() => serviceConfig({ ...devEnv, config: { WORKER_POOL: 'lots' } }, 'worker')).toThrow(/WORKER_POOL/);
  });
});

export type { K8sObject };

test('NODE_OPTIONS follows a changed memory limit, and the share is the entrypoint script\'s default', () => {
  const base = environment('prod');
  const objects = synth({ ...base, worker: { ...base.worker, resources: { ...base.worker.resources, memoryLimitMiB: 1000 } } });
  expect(container(find(objects, 'Deployment', 'task-scheduler-worker'), 'worker').env).toContainEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=750' });
  expect(HEAP_PERCENT).toBe(75);
  expect(readFileSync(path.join(REPO_ROOT, 'scripts/node-heap-entrypoint.sh'), 'utf8')).toContain(`percent=\${NODE_HEAP_PERCENT:-${HEAP_PERCENT}}`);
});

test("docker-compose's api and worker have the prod memory limits (the entrypoint derives their heaps from them)", () => {
  const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { mem_limit?: string; environment?: Record<string, string> }> };
  const prodEnv = environment('prod');
  for (const service of ['api', 'worker'] as const) {
    expect({ service, mem_limit: compose.services[service]!.mem_limit }).toEqual({ service, mem_limit: `${prodEnv[service].resources.memoryLimitMiB}m` });
    expect(compose.services[service]!.environment?.NODE_OPTIONS).toBeUndefined();
  }
});

test("docker-compose stops the api and worker with the prod chart's grace, and a worker publishes no fixed host port (it scales)", () => {
  const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { stop_grace_period?: string; ports?: string[] }> };
  const objects = synth(environment('prod'));
  for (const service of ['api', 'worker'] as const) {
    const seconds = find(objects, 'Deployment', `task-scheduler-${service}`).spec.template.spec.terminationGracePeriodSeconds as number;
    expect({ service, grace: compose.services[service]!.stop_grace_period }).toEqual({ service, grace: `${seconds}s` });
  }
  for (const port of compose.services.worker!.ports ?? []) expect(String(port)).not.toContain(':');
});
