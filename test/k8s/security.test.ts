/**
 * The manifests' security properties: no credential is committed in the prod output (plain
 * manifests and Helm chart), each component reads its own Secret and its own Postgres login, the
 * bootstrap admin key comes from a Secret the operator creates, NetworkPolicies select the app's
 * pods and let them reach only Postgres, Redis and DNS, and the dev Redis's ACL users work.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { parseAllDocuments } from 'yaml';
import { aclRules } from '../../services/core/db/redis-acl';
import { DATASTORES_SECRET } from '../../cdk8s/settings';
import { REPO_ROOT, SECRET_SETTINGS } from '../../cdk8s/sources';
import { freePort } from '../support/processes';
import { container, environment, find, synth, type K8sObject } from './helpers';

const prod = synth(environment('prod'));
const dev = synth(environment('dev'));
const devEnv = environment('dev');
const prodEnv = environment('prod');
const COMPONENTS = ['api', 'worker', 'migrator'] as const;

function workload(objects: K8sObject[], component: (typeof COMPONENTS)[number]): K8sObject {
  return component === 'migrator' ? objects.find((o) => o.kind === 'Job')! : find(objects, 'Deployment', `task-scheduler-${component}`);
}

/** Every env var of every container and init container of a pod template. */
function envOf(w: K8sObject): any[] {
  const pod = w.spec.template.spec;
  return [...(pod.initContainers ?? []), ...pod.containers].flatMap((c: any) => c.env ?? []);
}

const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/i;

describe('prod holds no credential', () => {
  const generated = [
    readFileSync(path.join(REPO_ROOT, 'charts/manifests/prod.yaml'), 'utf8'),
    ...readdirSync(path.join(REPO_ROOT, 'charts/task-scheduler/templates')).map((f) => readFileSync(path.join(REPO_ROOT, 'charts/task-scheduler/templates', f), 'utf8')),
    readFileSync(path.join(REPO_ROOT, 'charts/task-scheduler/values.yaml'), 'utf8'),
  ].join('\n');

  test('no Secret objects, no URL with a password, no API key, no credential setting with a literal value', () => {
    expect(prod.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(generated).not.toMatch(/^kind: Secret$/m);
    expect(generated).not.toMatch(URL_WITH_PASSWORD);
    expect(generated).not.toMatch(/tsk_[0-9a-f]{16}_/);
    expect(generated).not.toMatch(/dev-only/);
    for (const w of COMPONENTS.map((c) => workload(prod, c))) {
      for (const e of envOf(w).filter((x) => SECRET_SETTINGS.includes(x.name))) {
        expect({ owner: w.metadata.name, name: e.name, value: e.value, fromSecret: Boolean(e.valueFrom?.secretKeyRef) }).toEqual({ owner: w.metadata.name, name: e.name, value: undefined, fromSecret: true });
      }
    }
    for (const cm of prod.filter((o) => o.kind === 'ConfigMap')) {
      for (const key of SECRET_SETTINGS) expect({ cm: cm.metadata.name, key, has: key in (cm.data ?? {}) }).toEqual({ cm: cm.metadata.name, key, has: false });
    }
  });

  test('the bootstrap admin key comes from an optional Secret the operator creates, read by the api alone', () => {
    const refs = (objects: K8sObject[]) =>
      COMPONENTS.flatMap((c) => envOf(workload(objects, c)).filter((e) => e.name === 'BOOTSTRAP_ADMIN_KEY').map((e) => ({ component: c, ref: e.valueFrom?.secretKeyRef })));
    expect(refs(prod)).toEqual([{ component: 'api', ref: { name: prodEnv.credentials.bootstrapSecretName, key: 'BOOTSTRAP_ADMIN_KEY', optional: true } }]);
    expect(refs(dev)).toEqual([{ component: 'api', ref: { name: devEnv.credentials.bootstrapSecretName, key: 'BOOTSTRAP_ADMIN_KEY', optional: true } }]);
  });
});

describe('each component has credentials of its own', () => {
  const postgresSecret = (objects: K8sObject[], c: (typeof COMPONENTS)[number]) => {
    const refs = envOf(workload(objects, c)).filter((e) => e.name === 'POSTGRES_URL').map((e) => e.valueFrom.secretKeyRef.name);
    expect(new Set(refs).size).toBe(1); // init and main container alike
    return refs[0] as string;
  };

  test.each([['prod', prod], ['dev', dev]] as const)('%s: api, worker and migrator read POSTGRES_URL (and Redis credentials) from three different Secrets', (_, objects) => {
    const names = COMPONENTS.map((c) => postgresSecret(objects, c));
    expect(new Set(names).size).toBe(3);
    for (const c of ['api', 'worker'] as const) {
      const redisRefs = envOf(workload(objects, c)).filter((e) => ['REDIS_USERNAME', 'REDIS_PASS'].includes(e.name)).map((e) => e.valueFrom.secretKeyRef.name);
      expect(redisRefs).toEqual([postgresSecret(objects, c), postgresSecret(objects, c)]);
    }
    expect(envOf(workload(objects, 'migrator')).map((e) => e.name)).not.toContain('REDIS_PASS');
  });

  test('dev: every component logs in to Postgres and Redis as a different user with a different password; the migrator as the owner', () => {
    const secrets = Object.fromEntries(COMPONENTS.map((c) => [c, find(dev, 'Secret', devEnv.credentials.secretNames[c]).stringData]));
    const urls = COMPONENTS.map((c) => new URL(secrets[c].POSTGRES_URL));
    expect(new Set(urls.map((u) => u.username)).size).toBe(3);
    expect(new Set(urls.map((u) => u.password)).size).toBe(3);
    expect(urls.map((u) => u.username)).toEqual(['task_scheduler_api', 'task_scheduler_worker', 'app']);
    expect(secrets.api.REDIS_USERNAME).not.toBe(secrets.worker.REDIS_USERNAME);
    expect(secrets.api.REDIS_PASS).not.toBe(secrets.worker.REDIS_PASS);
    // The dev Postgres creates the api's and worker's logins with the passwords in their URLs.
    const stores = find(dev, 'Secret', DATASTORES_SECRET).stringData;
    expect([stores.API_DB_PASSWORD, stores.WORKER_DB_PASSWORD]).toEqual([urls[0]!.password, urls[1]!.password]);
    const init = find(dev, 'ConfigMap', 'task-scheduler-postgres-init').data['10-app-users.sh'];
    expect(init).toBe(readFileSync(path.join(REPO_ROOT, 'scripts/postgres-app-users.sh'), 'utf8'));
  });
});

describe('NetworkPolicies', () => {
  const policies = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'NetworkPolicy');
  const selects = (policy: K8sObject, w: K8sObject) =>
    Object.entries(policy.spec.podSelector.matchLabels ?? {}).every(([k, v]) => w.spec.template.metadata.labels[k] === v);

  test.each([['prod', prod], ['dev', dev]] as const)('%s: every app pod is selected by an egress policy allowing only its stores and DNS', (name, objects) => {
    const env = environment(name);
    for (const c of COMPONENTS) {
      const w = workload(objects, c);
      const egress = policies(objects).filter((p) => p.spec.policyTypes.includes('Egress') && selects(p, w));
      expect({ c, policies: egress.map((p) => p.metadata.name) }).toEqual({ c, policies: [`task-scheduler-${c}-egress`] });
      const rules = egress[0]!.spec.egress as any[];
      const ports = rules.map((r) => r.ports.map((p: any) => `${p.protocol}/${p.port}`).join(','));
      const stores = c === 'migrator' ? [env.egress.postgres.port] : [env.egress.postgres.port, env.egress.redis.port];
      expect(ports).toEqual([...stores.map((p) => `TCP/${p}`), 'UDP/53,TCP/53']);
      for (const r of rules) expect(r.to).toHaveLength(1);
      expect(rules.at(-1).to[0]).toEqual({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } });
      if (name === 'prod') expect(rules.slice(0, -1).map((r) => r.to[0].ipBlock.cidr)).toEqual(c === 'migrator' ? [env.egress.postgres.cidr] : [env.egress.postgres.cidr, env.egress.redis.cidr]);
      else expect(rules.slice(0, -1).map((r) => r.to[0].podSelector.matchLabels['app.kubernetes.io/component'])).toEqual(c === 'migrator' ? ['postgres'] : ['postgres', 'redis']);
    }
    // Ingress: only the api's HTTP port from the ingress controller, metrics from Prometheus.
    const apiIngress = policies(objects).filter((p) => p.spec.policyTypes.includes('Ingress') && selects(p, workload(objects, 'api')));
    expect(apiIngress.map((p) => p.metadata.name).sort()).toEqual(['task-scheduler-api', 'task-scheduler-default-deny-ingress']);
  });

  test("prod's egress ports are the ports the settings connect to", () => {
    const redisAddr = find(prod, 'ConfigMap', 'task-scheduler-api-config').data.REDIS_ADDR as string;
    expect(Number(redisAddr.split(':').pop())).toBe(prodEnv.egress.redis.port);
    expect(prodEnv.egress.postgres.port).toBe(5432);
  });
});

test('prod verifies Redis over TLS with the mounted CA bundle', () => {
  const cm = find(prod, 'ConfigMap', 'task-scheduler-worker-config').data;
  expect(cm.REDIS_TLS).toBe('true');
  expect(cm.REDIS_TLS_CA_FILE).toMatch(/^\/etc\/task-scheduler\/ca\//);
  const pod = workload(prod, 'worker').spec.template.spec;
  expect(pod.volumes).toContainEqual({ name: 'ca', configMap: { name: prodEnv.credentials.caConfigMap } });
  expect(container(workload(prod, 'worker'), 'worker').volumeMounts).toContainEqual({ name: 'ca', mountPath: '/etc/task-scheduler/ca', readOnly: true });
});

test('every generated YAML reads the same as YAML 1.1 (what Kubernetes parses: `on` would be a boolean there)', () => {
  for (const file of ['charts/manifests/dev.yaml', 'charts/manifests/prod.yaml']) {
    const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
    const as12 = parseAllDocuments(text).map((d) => d.toJS());
    const as11 = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS());
    expect({ file, same: JSON.stringify(as11) === JSON.stringify(as12) }).toEqual({ file, same: true });
  }
});

test("dev Redis's ACL users, from the StatefulSet's own arguments, log in and get the service rules", async () => {
  const sts = find(dev, 'StatefulSet', 'task-scheduler-redis');
  const c = sts.spec.template.spec.containers[0];
  const secrets = Object.fromEntries(['api', 'worker'].map((k) => [k, find(dev, 'Secret', devEnv.credentials.secretNames[k as 'api' | 'worker']).stringData]));
  const values: Record<string, string> = {
    REDIS_ADMIN_PASSWORD: find(dev, 'Secret', DATASTORES_SECRET).stringData.REDIS_ADMIN_PASSWORD,
    API_REDIS_PASS: secrets.api.REDIS_PASS,
    WORKER_REDIS_PASS: secrets.worker.REDIS_PASS,
  };
  expect(c.env.map((e: any) => e.name).sort()).toEqual(Object.keys(values).sort());
  // What the kubelet does with $(VAR), then a local redis-server instead of the image's.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dev-redis-'));
  const port = await freePort();
  const args = (c.args as string[]).map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => values[v]!)).map((a) => (a === '/data' ? dir : a));
  const server = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const clients: Redis[] = [];
  try {
    for (let i = 0; i < 200 && !/Ready to accept connections/.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    expect(log).toMatch(/Ready to accept connections/);
    const connect = (username: string, password: string) => {
      const r = new Redis({ host: '127.0.0.1', port, username, password, lazyConnect: true, retryStrategy: () => null });
      clients.push(r);
      return r;
    };
    const api = connect(secrets.api.REDIS_USERNAME, secrets.api.REDIS_PASS);
    await api.connect();
    expect(await api.set('{ts}:probe', '1')).toBe('OK');
    await expect(api.set('other', '1')).rejects.toThrow(/NOPERM/);
    const admin = connect('default', values.REDIS_ADMIN_PASSWORD!);
    await admin.connect();
    // Redis describes a user's rules in its own (compacted) words: compare with a user made from
    // redis-acl.ts's rules directly on the same server.
    await admin.call('ACL', 'SETUSER', 'reference', ...aclRules('ts', '>reference-password'));
    const describe = async (name: string) => {
      const user = (await admin.call('ACL', 'GETUSER', name)) as unknown[];
      const d = Object.fromEntries(Array.from({ length: user.length / 2 }, (_, i) => [user[2 * i], user[2 * i + 1]]));
      return { flags: d.flags, commands: d.commands, keys: d.keys, channels: d.channels };
    };
    const reference = await describe('reference');
    expect(reference.keys).toBe('~{ts}:* ~{ts:k*');
    for (const name of [secrets.api.REDIS_USERNAME!, secrets.worker.REDIS_USERNAME!]) expect({ name, rules: await describe(name) }).toEqual({ name, rules: reference });
  } finally {
    for (const r of clients) r.disconnect();
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
