/**
 * `npm run k8s:verify [-- options]`: checks a deployment end to end through the Kubernetes API
 * (@kubernetes/client-node, using KUBECONFIG / ~/.kube/config and its current context) and the
 * ingress. Exits 0 when every check passes, 1 otherwise.
 *   --env dev|prod       settings whose names, namespace and autoscaler to expect (default dev)
 *   --namespace NAME     override the environment's namespace
 *   --autoscaler KIND    override the environment's autoscaler kind (keda|hpa)
 *   --context NAME       kubeconfig context (default: the current one)
 *   --url URL            ingress base URL (default http://127.0.0.1:8088, kind's port mapping)
 *   --timeout SECONDS    overall deadline (default 300)
 *   --interval MS        poll interval (default 2000)
 *   --api-key KEY        API key for the task requests (default: dev's bootstrap admin key, which
 *                        the dev chart installs; for prod, e.g. one from `keys create`)
 *
 * @kubernetes/client-node 1.x is an ES module; tsx (and Node 20.19+'s require of ES modules) load
 * it from this CommonJS file. Jest does not, so the tests run this file as a child process.
 */
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { ENVIRONMENTS, type EnvironmentName } from '../settings';
import { verify, type ClusterReader } from './verify';

type Json = Record<string, any>;

function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 404;
}

async function orUndefined(read: () => Promise<unknown>): Promise<Json | undefined> {
  try {
    return (await read()) as Json;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new Error((err as Error).message.split('\n')[0]);
  }
}

export function clusterReader(kc: k8s.KubeConfig): ClusterReader {
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const autoscaling = kc.makeApiClient(k8s.AutoscalingV2Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  return {
    job: (namespace, name) => orUndefined(() => batch.readNamespacedJob({ namespace, name })),
    deployment: (namespace, name) => orUndefined(() => apps.readNamespacedDeployment({ namespace, name })),
    hpa: (namespace, name) => orUndefined(() => autoscaling.readNamespacedHorizontalPodAutoscaler({ namespace, name })),
    scaledObject: (namespace, name) =>
      orUndefined(() => custom.getNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace, plural: 'scaledobjects', name })),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      env: { type: 'string', default: 'dev' },
      namespace: { type: 'string' },
      autoscaler: { type: 'string' },
      context: { type: 'string' },
      url: { type: 'string', default: 'http://127.0.0.1:8088' },
      timeout: { type: 'string', default: '300' },
      interval: { type: 'string', default: '2000' },
      'api-key': { type: 'string' },
    },
  });
  const base = ENVIRONMENTS[values.env as EnvironmentName];
  if (!base) throw new Error(`--env must be one of ${Object.keys(ENVIRONMENTS).join(', ')}`);
  if (values.autoscaler && !['keda', 'hpa'].includes(values.autoscaler)) throw new Error('--autoscaler must be keda or hpa');
  const env = values.autoscaler ? { ...base, autoscaling: { ...base.autoscaling, kind: values.autoscaler as 'keda' | 'hpa' } } : base;
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  if (values.context) kc.setCurrentContext(values.context);
  const ok = await verify(
    {
      env,
      namespace: values.namespace ?? env.namespace,
      url: values.url!,
      timeoutMs: Number(values.timeout) * 1000,
      intervalMs: Number(values.interval),
      log: (line) => process.stdout.write(`${line}\n`),
      apiKey: values['api-key'] ?? env.credentials.create?.bootstrapAdminKey,
    },
    clusterReader(kc),
  );
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`k8s:verify: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
