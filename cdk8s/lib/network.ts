/**
 * NetworkPolicies: nothing reaches a pod of the namespace unless a policy says so. The ingress
 * controller reaches the api's HTTP port, Prometheus reaches the metrics ports, and only the api,
 * the workers and the migrator reach Postgres (and only the api and workers Redis), in dev where
 * those run in the namespace. Managed stores in prod are guarded by their own firewall rules.
 */
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { EnvironmentSettings } from '../settings';
import { APP, selectorLabels, type Component } from './pods';

const k8s = kplus.k8s;

function fromNamespace(namespace: string): kplus.k8s.NetworkPolicyPeer {
  return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } };
}

function fromComponents(components: Component[]): kplus.k8s.NetworkPolicyPeer {
  return {
    podSelector: {
      matchLabels: { 'app.kubernetes.io/part-of': APP },
      matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: components }],
    },
  };
}

function tcp(port: number): kplus.k8s.NetworkPolicyPort {
  return { protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) };
}

export class NetworkPolicies extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, ports: { api: number; apiMetrics: number; workerMetrics: number }) {
    super(scope, id);
    const policy = (name: string, component: Component | undefined, ingress: kplus.k8s.NetworkPolicyIngressRule[]) =>
      new k8s.KubeNetworkPolicy(this, name, {
        metadata: { name: `${APP}-${name}`, labels: { 'app.kubernetes.io/part-of': APP } },
        spec: { podSelector: component ? { matchLabels: selectorLabels(component) } : {}, policyTypes: ['Ingress'], ingress },
      });

    policy('default-deny-ingress', undefined, []);
    policy('api', 'api', [
      { from: [fromNamespace(env.ingress.controllerNamespace)], ports: [tcp(ports.api)] },
      { from: [fromNamespace(env.monitoring.namespace)], ports: [tcp(ports.apiMetrics)] },
    ]);
    policy('worker', 'worker', [{ from: [fromNamespace(env.monitoring.namespace)], ports: [tcp(ports.workerMetrics)] }]);
    if (env.datastores === 'in-cluster') {
      policy('postgres', 'postgres', [{ from: [fromComponents(['api', 'worker', 'migrator'])], ports: [tcp(5432)] }]);
      policy('redis', 'redis', [{ from: [fromComponents(['api', 'worker'])], ports: [tcp(6379)] }]);
    }
  }
}

