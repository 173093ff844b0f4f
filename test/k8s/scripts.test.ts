/**
 * The cluster scripts parse, and name what the manifests expect: the ingress controller's and
 * Prometheus' namespaces, kube-prometheus-stack's release label, the Prometheus service KEDA
 * queries, prometheus-adapter's rule ConfigMap, and the ingress port k8s:verify uses by default.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADAPTER_CONFIGMAP } from '../../cdk8s/lib/names';
import { ENVIRONMENTS, PROMETHEUS_URL } from '../../cdk8s/settings';
import { REPO_ROOT } from '../../cdk8s/sources';

const scripts = ['kind-up.sh', 'kind-down.sh', 'k8s-deploy.sh'];
const read = (f: string) => readFileSync(path.join(REPO_ROOT, f), 'utf8');

test.each(scripts)('scripts/%s is valid bash', (script) => {
  execFileSync('bash', ['-n', path.join(REPO_ROOT, 'scripts', script)]);
});

test('kind-up.sh installs what the dev settings point at', () => {
  const up = read('scripts/kind-up.sh');
  const dev = ENVIRONMENTS.dev;
  expect(up).toContain(`--namespace ${dev.ingress.controllerNamespace} --create-namespace`);
  expect(up).toContain(`--set ingressClass.name=${dev.ingress.className}`);
  expect(up).toContain(`helm upgrade --install ${dev.monitoring.releaseLabel} prometheus-community/kube-prometheus-stack`);
  expect(up).toContain(`--namespace ${dev.monitoring.namespace} --create-namespace`);
  expect(up).toContain('--set grafana.sidecar.dashboards.label=grafana_dashboard');
  expect(up).toContain(`--set rules.existing=${ADAPTER_CONFIGMAP}`);
  // KEDA queries the Service kube-prometheus-stack creates for its release name.
  expect(new URL(PROMETHEUS_URL).hostname).toBe(`${dev.monitoring.releaseLabel}-prometheus.${dev.monitoring.namespace}.svc`);
  expect(up).toContain('--set prometheus.url=http://kube-prometheus-stack-prometheus.monitoring.svc');
  // kind maps 127.0.0.1:8088 to the controller's NodePort; k8s:verify defaults to that URL.
  expect(up).toContain('INGRESS_HTTP_PORT=${INGRESS_HTTP_PORT:-8088}');
  expect(up).toContain('--set ports.web.nodePort=30080');
  expect(read('cdk8s/verify/main.ts')).toContain("url: { type: 'string', default: 'http://127.0.0.1:8088' }");
});

test('k8s-deploy.sh finds the release Job in the manifests it applies', () => {
  for (const env of ['dev', 'prod']) {
    const out = execFileSync('awk', ['/^kind: Job$/ { found = 1 } found && /^  name: / { print $2; exit }', path.join(REPO_ROOT, `charts/manifests/${env}.yaml`)], { encoding: 'utf8' });
    expect(out.trim()).toBe(`task-scheduler-migrate-${env === 'dev' ? 'dev' : ENVIRONMENTS.prod.release.replace(/\./g, '-')}`);
  }
  expect(read('scripts/k8s-deploy.sh')).toContain("awk '/^kind: Job$/ { found = 1 } found && /^  name: / { print $2; exit }'");
});
