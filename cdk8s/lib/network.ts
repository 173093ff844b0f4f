/**
 * NetworkPolicies: nothing reaches a pod of the namespace unless a policy says so, and the app's
 * pods reach nothing but what they need.
 *
 * Ingress: the ingress controller reaches the api's HTTP port, Prometheus the metrics ports, and
 * only the api, the workers and the migrator reach Postgres (and only the api and workers Redis),
 * in dev where those run in the namespace. Managed stores in prod are guarded by their own
 * firewall rules, which should admit the cluster's pods only.
 *
 * Egress: the api and the workers may reach Postgres, Redis and the cluster DNS; the migrator
 * Postgres and DNS. A stolen api or worker pod cannot then call out to an attacker, reach the
 * Kubernetes API or the cloud's metadata service, or scan the cluster. Handlers that call other
 * services need one more policy allowing that (policies add up; see docs/security.md).
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
    const policy = (name: string, component: Component | undefined, rules: { ingress?: kplus.k8s.NetworkPolicyIngressRule[]; egress?: kplus.k8s.NetworkPolicyEgressRule[] }) =>
      new k8s.KubeNetworkPolicy(this, name, {
        metadata: { name: `${APP}-${name}`, labels: { 'app.kubernetes.io/part-of': APP } },
        spec: {
          podSelector: component ? { matchLabels: selectorLabels(component) } : {},
          policyTypes: [...(rules.ingress ? ['Ingress'] : []), ...(rules.egress ? ['Egress'] : [])],
          ...rules,
        },
      });

    policy('default-deny-ingress', undefined, { ingress: [] });
    policy('api', 'api', {
      ingress: [
        { from: [fromNamespace(env.ingress.controllerNamespace)], ports: [tcp(ports.api)] },
        { from: [fromNamespace(env.monitoring.namespace)], ports: [tcp(ports.apiMetrics)] },
      ],
    });
    policy('worker', 'worker', { ingress: [{ from: [fromNamespace(env.monitoring.namespace)], ports: [tcp(ports.workerMetrics)] }] });

    const inCluster = env.datastores === 'in-cluster';
    const { postgres, redis, dns } = env.egress;
    const store = (component: 'postgres' | 'redis', to: { cidr: string; port: number }): kplus.k8s.NetworkPolicyEgressRule => ({
      to: [inCluster ? { podSelector: { matchLabels: selectorLabels(component) } } : { ipBlock: { cidr: to.cidr } }],
      ports: [tcp(to.port)],
    });
    const dnsRule: kplus.k8s.NetworkPolicyEgressRule = {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': dns.namespace } }, podSelector: { matchLabels: dns.podLabels } }],
      ports: [
        { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
        { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
      ],
    };
    policy('api-egress', 'api', { egress: [store('postgres', postgres), store('redis', redis), dnsRule] });
    policy('worker-egress', 'worker', { egress: [store('postgres', postgres), store('redis', redis), dnsRule] });
    policy('migrator-egress', 'migrator', { egress: [store('postgres', postgres), dnsRule] });

    if (inCluster) {
      policy('postgres', 'postgres', { ingress: [{ from: [fromComponents(['api', 'worker', 'migrator'])], ports: [tcp(5432)] }] });
      policy('redis', 'redis', { ingress: [{ from: [fromComponents(['api', 'worker'])], ports: [tcp(6379)] }] });
    }
  }
}
