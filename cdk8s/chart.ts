/**
 * The task-scheduler deployment of one environment: a Namespace (its own chart, as cdk8s would
 * otherwise give it a namespace of its own) and everything inside it.
 */
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { WorkerAutoscaling } from './lib/autoscaling';
import { DevDatastores } from './lib/datastores';
import { Monitoring } from './lib/monitoring';
import { NetworkPolicies } from './lib/network';
import { APP } from './lib/pods';
import { TaskSchedulerWorkloads } from './lib/workloads';
import { DATASTORES_SECRET, type EnvironmentSettings } from './settings';
import type { Sources } from './sources';

export class NamespaceChart extends Chart {
  constructor(scope: Construct, id: string, env: EnvironmentSettings) {
    super(scope, id, { disableResourceNameHashes: true });
    new kplus.k8s.KubeNamespace(this, 'namespace', {
      metadata: {
        name: env.namespace,
        labels: {
          'app.kubernetes.io/part-of': APP,
          // Every pod here meets the `restricted` Pod Security Standard, and the API server checks it.
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'latest',
        },
      },
    });
  }
}

export class TaskSchedulerChart extends Chart {
  readonly workloads: TaskSchedulerWorkloads;

  constructor(scope: Construct, id: string, env: EnvironmentSettings, sources: Sources) {
    super(scope, id, { namespace: env.namespace, disableResourceNameHashes: true, labels: { 'app.kubernetes.io/part-of': APP } });
    const { create, secretNames, bootstrapSecretName } = env.credentials;
    if (create) {
      // dev only (kind): credentials of the in-cluster stores, committed on purpose and named so.
      const devSecret = (id: string, name: string, data: Record<string, string>) =>
        new kplus.Secret(this, id, { metadata: { name, labels: { 'app.kubernetes.io/part-of': APP, 'task-scheduler/dev-only-credentials': 'true' } }, stringData: data });
      for (const component of ['api', 'worker', 'migrator'] as const) devSecret(`${component}-credentials`, secretNames[component], create.secrets[component] as Record<string, string>);
      devSecret('bootstrap-admin-key', bootstrapSecretName, { BOOTSTRAP_ADMIN_KEY: create.bootstrapAdminKey });
      devSecret('datastores-credentials', DATASTORES_SECRET, { ...create.datastores });
    }
    if (env.datastores === 'in-cluster') new DevDatastores(this, 'datastores', env, sources);
    this.workloads = new TaskSchedulerWorkloads(this, 'app', env, sources);
    new WorkerAutoscaling(this, 'autoscaling', env, this.workloads.workerDeployment, this.workloads.apiService.name);
    new Monitoring(this, 'monitoring', env, sources);
    new NetworkPolicies(this, 'network', env, this.workloads.ports);
  }
}

/** Every object of an environment, in apply order (the Namespace first). */
export function synthEnvironment(env: EnvironmentSettings, sources: Sources): Record<string, any>[] {
  const app = new App({ outdir: '/dev/null' });
  const charts = [new NamespaceChart(app, `${env.name}-namespace`, env), new TaskSchedulerChart(app, env.name, env, sources)];
  return charts.flatMap((chart) => chart.toJson());
}

