/**
 * What every task-scheduler pod shares: labels, the restricted security context (numeric user
 * 10001 as in the Dockerfile, read-only root with an emptyDir at /tmp, no privilege escalation, no
 * capabilities, RuntimeDefault seccomp), resources, credentials from Secrets, CA bundles, and the init
 * container that holds a pod back until the schema is migrated.
 */
import { ApiObject, Duration, JsonPatch, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import type { SettingName } from '../../services/core/config/config';
import { CA_DIR, type ResourceSettings } from '../settings';

import { APP } from './names';

export { APP };
export const APP_USER = 10001;
export type Component = 'api' | 'worker' | 'migrator' | 'postgres' | 'redis';

/** Labels that select a component's pods. */
export function selectorLabels(component: Component): Record<string, string> {
  return { 'app.kubernetes.io/part-of': APP, 'app.kubernetes.io/component': component };
}

/** Labels of every object of a component. */
export function labels(component: Component): Record<string, string> {
  return { 'app.kubernetes.io/name': `${APP}-${component}`, ...selectorLabels(component) };
}

export function containerSecurityContext(user = APP_USER): kplus.ContainerSecurityContextProps {
  return {
    ensureNonRoot: true,
    user,
    group: user,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    // cdk8s-plus-27's Capability enum has no ALL; the API takes the string.
    capabilities: { drop: ['ALL' as kplus.Capability] },
  };
}

export function podSecurityContext(user = APP_USER): kplus.PodSecurityContextProps {
  return { ensureNonRoot: true, user, group: user, fsGroup: user, fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH };
}

export function resources(r: ResourceSettings): kplus.ContainerResources {
  return {
    cpu: { request: kplus.Cpu.millis(r.cpuRequestMillis), limit: kplus.Cpu.millis(r.cpuLimitMillis) },
    memory: { request: Size.mebibytes(r.memoryRequestMiB), limit: Size.mebibytes(r.memoryLimitMiB) },
  };
}

/**
 * V8's heap limit as a share of the container's memory limit (the rest is for buffers, code and
 * stacks): without one, V8 sizes its heap from the node's memory and the container is OOM-killed
 * before the garbage collector works hard. The images' entrypoint derives the same share from the
 * cgroup (scripts/node-heap-entrypoint.sh); NODE_OPTIONS sets it here too, so the manifests show it
 * and it follows the limit in settings.ts.
 */
export const HEAP_PERCENT = 75;

export function nodeHeapEnv(r: ResourceSettings): Record<string, kplus.EnvValue> {
  return { NODE_OPTIONS: kplus.EnvValue.fromValue(`--max-old-space-size=${Math.floor((r.memoryLimitMiB * HEAP_PERCENT) / 100)}`) };
}

/** An emptyDir for /tmp: the root filesystem is read-only. */
export function tmpMount(scope: Construct, id: string, volumeName = 'tmp'): kplus.VolumeMount {
  return { path: '/tmp', volume: kplus.Volume.fromEmptyDir(scope, id, volumeName, { sizeLimit: Size.mebibytes(64) }) };
}

/** Env vars of the same name read from a Secret; `optional`: the pod starts without the Secret (or key). */
export function secretEnv(scope: Construct, secretName: string, keys: readonly SettingName[] | readonly string[], optional = false): Record<string, kplus.EnvValue> {
  const id = `${secretName}-ref`;
  const secret = (scope.node.tryFindChild(id) as kplus.ISecret | undefined) ?? kplus.Secret.fromSecretName(scope, id, secretName);
  return Object.fromEntries(keys.map((key) => [key, kplus.EnvValue.fromSecretValue({ secret, key }, optional ? { optional: true } : undefined)]));
}

/**
 * The CA bundles (PEM) that verify Postgres's and Redis's certificates, read-only at CA_DIR, from
 * the ConfigMap the operator creates; none when the environment names no ConfigMap.
 */
export function caMounts(scope: Construct, id: string, configMapName: string): kplus.VolumeMount[] {
  if (!configMapName) return [];
  const existing = scope.node.tryFindChild(`${id}-volume`) as kplus.Volume | undefined;
  const volume = existing ?? kplus.Volume.fromConfigMap(scope, `${id}-volume`, kplus.ConfigMap.fromConfigMapName(scope, `${id}-ref`, configMapName), { name: 'ca' });
  return [{ path: CA_DIR, volume, readOnly: true }];
}

/**
 * The init container that waits for schema_migrations to reach `schemaVersion`. It runs the pod's
 * own image (node and pg are there) with cdk8s/wait-for-schema.js as `node -e`.
 */
export function waitForSchemaContainer(opts: {
  scope: Construct;
  /** Unique per pod template within the scope. */
  id: string;
  image: string;
  imagePullPolicy: kplus.ImagePullPolicy;
  secretName: string;
  /** CA bundle mounts (caMounts), for a POSTGRES_URL that names sslrootcert. */
  caMounts: kplus.VolumeMount[];
  schemaVersion: number;
  script: string;
}): kplus.ContainerProps {
  const limits: ResourceSettings = { cpuRequestMillis: 10, cpuLimitMillis: 200, memoryRequestMiB: 32, memoryLimitMiB: 128 };
  return {
    name: 'wait-for-schema',
    image: opts.image,
    imagePullPolicy: opts.imagePullPolicy,
    command: ['node', '-e', opts.script],
    envVariables: {
      ...secretEnv(opts.scope, opts.secretName, ['POSTGRES_URL']),
      EXPECTED_SCHEMA_VERSION: kplus.EnvValue.fromValue(String(opts.schemaVersion)),
      ...nodeHeapEnv(limits),
    },
    securityContext: containerSecurityContext(),
    resources: resources(limits),
    volumeMounts: [tmpMount(opts.scope, `${opts.id}-tmp`, 'init-tmp'), ...opts.caMounts],
  };
}

export function httpProbe(path: string, port: number, periodSeconds = 10): kplus.Probe {
  return kplus.Probe.fromHttpGet(path, {
    port,
    periodSeconds: Duration.seconds(periodSeconds),
    timeoutSeconds: Duration.seconds(3),
    failureThreshold: 3,
  });
}

/**
 * Finishes a cdk8s-plus workload: RuntimeDefault seccomp (required by the `restricted` Pod
 * Security Standard, which cdk8s-plus-27 cannot express), and no `cdk8s.io/metadata.addr` label:
 * selectors use the app.kubernetes.io labels, so the output has no construct-path hashes.
 */
export function finishPodSpec(workload: Construct, podSpecPath: string, templateLabelsPath: string): void {
  const obj = ApiObject.of(workload);
  obj.addJsonPatch(JsonPatch.add(`${podSpecPath}/securityContext/seccompProfile`, { type: 'RuntimeDefault' }));
  obj.addJsonPatch(JsonPatch.remove(`${templateLabelsPath}/cdk8s.io~1metadata.addr`));
}
