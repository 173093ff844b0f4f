/**
 * The typed deployment settings of every environment, in one place. `npm run synth` renders one
 * manifest file per entry of ENVIRONMENTS (charts/manifests/<name>.yaml) and the Helm chart from
 * `prod`. Service settings (the environment variables) are not repeated here: they come from the
 * settings table in services/core/config/config.ts, and `config` only overrides its defaults.
 */
import type { SettingName } from '../services/core/config/config';
import { version } from '../package.json';

export type EnvironmentName = 'dev' | 'prod';

/**
 * How the worker Deployment scales on queue depth and on the oldest task's wait (docs/autoscaling.md).
 * - `keda`: a KEDA ScaledObject with Prometheus triggers (the default: KEDA queries Prometheus
 *   itself, no metrics adapter needed); the only kind that can scale to zero.
 * - `hpa`: a plain autoscaling/v2 HorizontalPodAutoscaler on External metrics, served by
 *   prometheus-adapter from the rule ConfigMap this app also renders. Only one of KEDA and
 *   prometheus-adapter can serve external.metrics.k8s.io in a cluster.
 */
export type AutoscalerKind = 'keda' | 'hpa';

export interface ResourceSettings {
  cpuRequestMillis: number;
  cpuLimitMillis: number;
  memoryRequestMiB: number;
  memoryLimitMiB: number;
}

export type AppComponent = 'api' | 'worker' | 'migrator';

export interface CredentialsSettings {
  /**
   * The Secret of each component, so each holds only its own credentials (docs/security.md):
   * api and worker: POSTGRES_URL of their own login that may only read and write rows (a member
   * of task_scheduler_app, migration 0006), REDIS_USERNAME and REDIS_PASS of their own Redis ACL
   * user (`npm run -s redis:acl`); migrator: POSTGRES_URL of the schema's owner.
   */
  secretNames: Record<AppComponent, string>;
  /**
   * Secret with BOOTSTRAP_ADMIN_KEY, an admin key of the tenant `default` the api makes sure exists
   * (only its hash is stored). Optional: without the Secret, the api starts without one.
   */
  bootstrapSecretName: string;
  /** ConfigMap of PEM CA bundles mounted read-only at CA_DIR in the app's pods; '' for none. */
  caConfigMap: string;
  /**
   * dev only: the Secrets to create, for the in-cluster stores. Elsewhere every Secret is created
   * outside the manifests (kubectl, External Secrets, …), and the manifests hold no credential.
   */
  create?: DevCredentials;
}

export interface DevCredentials {
  /** Each component's Secret. */
  secrets: Record<AppComponent, Partial<Record<SettingName, string>>>;
  /** The bootstrap admin key (`npm run k8s:verify` sends it). */
  bootstrapAdminKey: string;
  /** Accounts of the in-cluster stores, in the Secret DATASTORES_SECRET. */
  datastores: { POSTGRES_PASSWORD: string; API_DB_PASSWORD: string; WORKER_DB_PASSWORD: string; REDIS_ADMIN_PASSWORD: string };
}

/** Where the pods find the CA bundles of caConfigMap. */
export const CA_DIR = '/etc/task-scheduler/ca';
/** dev: the Secret with the in-cluster stores' own passwords (superuser, app logins, Redis admin). */
export const DATASTORES_SECRET = 'task-scheduler-datastores';

/**
 * Egress of the app's pods besides DNS: the stores, by address block (managed services outside
 * the cluster) or, with `in-cluster` datastores, by pod label.
 */
export interface EgressSettings {
  postgres: { cidr: string; port: number };
  redis: { cidr: string; port: number };
  /** Namespace and pod labels of the cluster DNS the pods may query (UDP and TCP 53). */
  dns: { namespace: string; podLabels: Record<string, string> };
}

export interface EnvironmentSettings {
  name: EnvironmentName;
  namespace: string;
  /** Prefix of the three image names: '' for images loaded into kind by name, or 'registry/path/'. */
  imageRegistry: string;
  imageTag: string;
  /** IfNotPresent everywhere: kind only has images loaded with `kind load`, and tags are immutable. */
  imagePullPolicy: 'IfNotPresent' | 'Always';
  /** Suffix of the migrator Job's name, so every release runs a new Job (Job specs are immutable). */
  release: string;
  api: { replicas: number; resources: ResourceSettings };
  /** minReplicas 0: scale to zero while no task waits, runs or waits for a retry (`keda` only). */
  worker: { minReplicas: number; maxReplicas: number; resources: ResourceSettings };
  migrator: { resources: ResourceSettings };
  autoscaling: {
    kind: AutoscalerKind;
    /** Waiting tasks per worker replica the autoscaler aims for. */
    tasksPerWorker: number;
    /** How long the oldest waiting task may wait before the autoscaler adds workers in proportion. */
    targetOldestWaitSeconds: number;
    /** Prometheus that KEDA queries (unused by the `hpa` kind, whose adapter has its own). */
    prometheusUrl: string;
    pollingIntervalSeconds: number;
    /**
     * Scale-down looks back this long and removes at most a quarter of the workers a minute; with
     * scale to zero, the last worker goes once nothing was active for this long.
     */
    scaleDownStabilizationSeconds: number;
  };
  ingress: {
    className: string;
    /** Empty: the rule matches every host (kind, reached at localhost). */
    host: string;
    /** TLS Secret for the host; empty for none. */
    tlsSecretName: string;
    /** Namespace of the ingress controller, the only one whose pods may reach the api's HTTP port. */
    controllerNamespace: string;
  };
  monitoring: {
    /** Namespace of Prometheus (allowed to scrape) and of prometheus-adapter. */
    namespace: string;
    /** `release` label kube-prometheus-stack selects ServiceMonitors and PrometheusRules by. */
    releaseLabel: string;
    scrapeInterval: string;
  };
  /** `in-cluster`: Postgres and Redis StatefulSets (dev only); `managed`: external services. */
  datastores: 'in-cluster' | 'managed';
  credentials: CredentialsSettings;
  egress: EgressSettings;
  /** Overrides of the settings table's defaults for this environment (non-secret settings only). */
  config: Partial<Record<SettingName, string>>;
}

const SECRET_NAMES: Pick<CredentialsSettings, 'secretNames' | 'bootstrapSecretName'> = {
  secretNames: { api: 'task-scheduler-api-credentials', worker: 'task-scheduler-worker-credentials', migrator: 'task-scheduler-migrator-credentials' },
  bootstrapSecretName: 'task-scheduler-bootstrap-admin-key',
};

/** CoreDNS (or kube-dns) as most clusters, kind included, run it. */
const KUBE_DNS: EgressSettings['dns'] = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } };

const small: ResourceSettings = { cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 96, memoryLimitMiB: 256 };

export const PROMETHEUS_URL = 'http://kube-prometheus-stack-prometheus.monitoring.svc:9090';

export const ENVIRONMENTS: Record<EnvironmentName, EnvironmentSettings> = {
  dev: {
    name: 'dev',
    namespace: 'task-scheduler',
    imageRegistry: '',
    imageTag: 'dev',
    imagePullPolicy: 'IfNotPresent',
    release: 'dev',
    api: { replicas: 1, resources: small },
    worker: { minReplicas: 1, maxReplicas: 5, resources: small },
    migrator: { resources: small },
    autoscaling: { kind: 'keda', tasksPerWorker: 50, targetOldestWaitSeconds: 15, prometheusUrl: PROMETHEUS_URL, pollingIntervalSeconds: 15, scaleDownStabilizationSeconds: 120 },
    ingress: { className: 'traefik', host: '', tlsSecretName: '', controllerNamespace: 'traefik' },
    monitoring: { namespace: 'monitoring', releaseLabel: 'kube-prometheus-stack', scrapeInterval: '15s' },
    datastores: 'in-cluster',
    credentials: {
      ...SECRET_NAMES,
      caConfigMap: '',
      // Development-only credentials of the in-cluster stores; never used outside kind.
      create: {
        secrets: {
          api: { POSTGRES_URL: 'postgres://task_scheduler_api:dev-only-api-db-password@task-scheduler-postgres:5432/app?sslmode=disable', REDIS_USERNAME: 'task-scheduler-api', REDIS_PASS: 'dev-only-api-redis-password' },
          worker: { POSTGRES_URL: 'postgres://task_scheduler_worker:dev-only-worker-db-password@task-scheduler-postgres:5432/app?sslmode=disable', REDIS_USERNAME: 'task-scheduler-worker', REDIS_PASS: 'dev-only-worker-redis-password' },
          migrator: { POSTGRES_URL: 'postgres://app:dev-only-password@task-scheduler-postgres:5432/app?sslmode=disable' },
        },
        bootstrapAdminKey: 'tsk_000000000000d0e0_dev-only-kind-admin-key-not-for-any-real-us',
        datastores: { POSTGRES_PASSWORD: 'dev-only-password', API_DB_PASSWORD: 'dev-only-api-db-password', WORKER_DB_PASSWORD: 'dev-only-worker-db-password', REDIS_ADMIN_PASSWORD: 'dev-only-password' },
      },
    },
    egress: { postgres: { cidr: '', port: 5432 }, redis: { cidr: '', port: 6379 }, dns: KUBE_DNS },
    config: {
      REDIS_ADDR: 'task-scheduler-redis:6379',
      // Short so `skaffold dev` redeploys quickly; the manifests' grace periods follow it.
      SHUTDOWN_GRACE_MS: '10000',
      WORKER_POOL: '8',
      PGPOOL_MAX_CONNS: '5',
    },
  },
  prod: {
    name: 'prod',
    namespace: 'task-scheduler',
    imageRegistry: 'registry.example.com/task-scheduler/',
    imageTag: version,
    imagePullPolicy: 'IfNotPresent',
    release: version,
    api: { replicas: 3, resources: { cpuRequestMillis: 250, cpuLimitMillis: 1000, memoryRequestMiB: 256, memoryLimitMiB: 512 } },
    worker: { minReplicas: 2, maxReplicas: 20, resources: { cpuRequestMillis: 500, cpuLimitMillis: 2000, memoryRequestMiB: 256, memoryLimitMiB: 768 } },
    migrator: { resources: { cpuRequestMillis: 100, cpuLimitMillis: 500, memoryRequestMiB: 128, memoryLimitMiB: 256 } },
    autoscaling: { kind: 'keda', tasksPerWorker: 100, targetOldestWaitSeconds: 30, prometheusUrl: PROMETHEUS_URL, pollingIntervalSeconds: 15, scaleDownStabilizationSeconds: 300 },
    ingress: { className: 'traefik', host: 'tasks.example.com', tlsSecretName: 'task-scheduler-tls', controllerNamespace: 'traefik' },
    monitoring: { namespace: 'monitoring', releaseLabel: 'kube-prometheus-stack', scrapeInterval: '15s' },
    datastores: 'managed',
    credentials: { ...SECRET_NAMES, caConfigMap: 'task-scheduler-ca' },
    // Example address blocks of the managed stores; set yours (values: egress.*).
    egress: { postgres: { cidr: '10.20.0.0/24', port: 5432 }, redis: { cidr: '10.20.1.0/24', port: 6380 }, dns: KUBE_DNS },
    config: {
      // TLS to Redis, verified against the CA bundle of the task-scheduler-ca ConfigMap. Postgres's
      // TLS is in POSTGRES_URL (the Secrets): ?sslmode=verify-full&sslrootcert=${CA_DIR}/postgres-ca.crt
      REDIS_ADDR: 'redis.example.internal:6380',
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: `${CA_DIR}/redis-ca.crt`,
    },
  },
};

/** Image reference of one service in an environment. */
export function imageOf(env: EnvironmentSettings, service: 'api' | 'worker' | 'migrator'): string {
  return `${env.imageRegistry}task-scheduler-${service}:${env.imageTag}`;
}

/** A DNS-1123 label fragment from a release id or tag (0.1.0 → 0-1-0). */
export function nameFragment(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
}
