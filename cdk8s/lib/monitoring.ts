/**
 * What kube-prometheus-stack picks up: ServiceMonitors for the api and the workers and a
 * PrometheusRule per alerts/*.yml (both labelled `release` for its selectors), and a ConfigMap per
 * grafana/dashboards/*.json labelled `grafana_dashboard: "1"` for the Grafana sidecar.
 */
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PrometheusRule, ServiceMonitor } from '../imports/crds';
import { nameFragment, type EnvironmentSettings } from '../settings';
import type { Sources } from '../sources';
import { APP, labels, selectorLabels } from './pods';

export class Monitoring extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, sources: Sources) {
    super(scope, id);
    const release = { release: env.monitoring.releaseLabel };

    for (const component of ['api', 'worker'] as const) {
      new ServiceMonitor(this, `${component}-monitor`, {
        metadata: { name: `${APP}-${component}`, labels: { ...labels(component), ...release } },
        spec: {
          selector: { matchLabels: selectorLabels(component) },
          // The services label every series service="api"|"worker" themselves; honouring it keeps
          // the series (and the rules and dashboards) the same as outside Kubernetes, instead of
          // renaming it exported_service under the Service's name.
          endpoints: [{ port: 'metrics', path: '/metrics', interval: env.monitoring.scrapeInterval, honorLabels: true }],
        },
      });
    }

    for (const file of sources.ruleFiles) {
      new PrometheusRule(this, `rules-${file.name}`, {
        metadata: { name: `${APP}-${nameFragment(file.name)}`, labels: { 'app.kubernetes.io/part-of': APP, ...release } },
        spec: { groups: file.groups as never },
      });
    }

    for (const dashboard of sources.dashboards) {
      new kplus.k8s.KubeConfigMap(this, `dashboard-${dashboard.name}`, {
        metadata: {
          name: `${APP}-dashboard-${nameFragment(dashboard.name)}`,
          labels: { 'app.kubernetes.io/part-of': APP, grafana_dashboard: '1' },
        },
        data: { [dashboard.fileName]: dashboard.json },
      });
    }
  }
}
