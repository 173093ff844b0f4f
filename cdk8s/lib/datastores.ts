/**
 * Postgres and Redis as single-replica StatefulSets, for the dev profile only (prod points at
 * managed services). They run as their images' own uid 999 under the same restricted security
 * context as the app (read-only root; writable data volume, run directory and /tmp).
 */
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { aclRules } from '../../services/core/db/redis-acl';
import { serviceConfig, type Sources } from '../sources';
import { DATASTORES_SECRET, type EnvironmentSettings } from '../settings';
import { APP, labels, selectorLabels, type Component } from './pods';

const k8s = kplus.k8s;
const STORE_USER = 999;

function securityContext(): kplus.k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: STORE_USER,
    runAsGroup: STORE_USER,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  };
}

function podSecurityContext(): kplus.k8s.PodSecurityContext {
  return { runAsNonRoot: true, runAsUser: STORE_USER, runAsGroup: STORE_USER, fsGroup: STORE_USER, seccompProfile: { type: 'RuntimeDefault' } };
}

function quantity(value: string) {
  return kplus.k8s.Quantity.fromString(value);
}

interface StoreProps {
  component: Extract<Component, 'postgres' | 'redis'>;
  image: string;
  port: number;
  dataPath: string;
  container: Omit<kplus.k8s.Container, 'name' | 'image' | 'ports' | 'securityContext' | 'resources' | 'volumeMounts'>;
  extraMounts: { name: string; mountPath: string }[];
  /** Volumes of the extra mounts that are not emptyDirs. */
  volumes?: kplus.k8s.Volume[];
}

function store(scope: Construct, name: string, props: StoreProps): void {
  new k8s.KubeService(scope, `${props.component}-service`, {
    metadata: { name, labels: labels(props.component) },
    spec: {
      selector: selectorLabels(props.component),
      ports: [{ name: props.component, port: props.port, targetPort: k8s.IntOrString.fromNumber(props.port) }],
    },
  });
  new k8s.KubeStatefulSet(scope, props.component, {
    metadata: { name, labels: labels(props.component) },
    spec: {
      serviceName: name,
      replicas: 1,
      selector: { matchLabels: selectorLabels(props.component) },
      template: {
        metadata: { labels: labels(props.component) },
        spec: {
          automountServiceAccountToken: false,
          securityContext: podSecurityContext(),
          containers: [
            {
              name: props.component,
              image: props.image,
              imagePullPolicy: 'IfNotPresent',
              ports: [{ name: props.component, containerPort: props.port }],
              securityContext: securityContext(),
              resources: {
                requests: { cpu: quantity('50m'), memory: quantity('128Mi') },
                limits: { cpu: quantity('1'), memory: quantity('512Mi') },
              },
              volumeMounts: [{ name: 'data', mountPath: props.dataPath }, ...props.extraMounts],
              ...props.container,
            },
          ],
          volumes: props.extraMounts.map((m) => props.volumes?.find((v) => v.name === m.name) ?? { name: m.name, emptyDir: { sizeLimit: quantity('64Mi') } }),
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: quantity('1Gi') } } },
        },
      ],
    },
  });
}

/** A Secret's key as an env var of the store's container. */
function fromSecret(name: string, secret: string, key: string): kplus.k8s.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

export class DevDatastores extends Construct {
  static readonly POSTGRES = 'task-scheduler-postgres';
  static readonly REDIS = 'task-scheduler-redis';
  static readonly POSTGRES_INIT = 'task-scheduler-postgres-init';

  constructor(scope: Construct, id: string, env: EnvironmentSettings, sources: Sources) {
    super(scope, id);
    const secrets = env.credentials.secretNames;
    // The api's and the worker's own logins (members of task_scheduler_app, DML only), made when
    // the data directory is first initialized: the same script docker-compose runs.
    new k8s.KubeConfigMap(this, 'postgres-init', {
      metadata: { name: DevDatastores.POSTGRES_INIT, labels: labels('postgres') },
      data: { '10-app-users.sh': sources.postgresUsersScript },
    });
    store(this, DevDatastores.POSTGRES, {
      component: 'postgres',
      image: 'postgres:16',
      port: 5432,
      dataPath: '/var/lib/postgresql/data',
      extraMounts: [
        { name: 'run', mountPath: '/var/run/postgresql' },
        { name: 'tmp', mountPath: '/tmp' },
        { name: 'init', mountPath: '/docker-entrypoint-initdb.d' },
      ],
      // Executable: the image runs it instead of sourcing it into its own shell.
      volumes: [{ name: 'init', configMap: { name: DevDatastores.POSTGRES_INIT, defaultMode: 0o555 } }],
      container: {
        env: [
          // `app` owns the database and the schema (the migrator logs in as it).
          { name: 'POSTGRES_USER', value: 'app' },
          { name: 'POSTGRES_DB', value: 'app' },
          fromSecret('POSTGRES_PASSWORD', DATASTORES_SECRET, 'POSTGRES_PASSWORD'),
          fromSecret('API_DB_PASSWORD', DATASTORES_SECRET, 'API_DB_PASSWORD'),
          fromSecret('WORKER_DB_PASSWORD', DATASTORES_SECRET, 'WORKER_DB_PASSWORD'),
          // A subdirectory: the volume's root holds lost+found on some provisioners.
          { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
        ],
        readinessProbe: { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', 'app', '-d', 'app'] }, periodSeconds: 5 },
        livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(5432) }, periodSeconds: 10, initialDelaySeconds: 30 },
      },
    });
    // The api and the worker log in as ACL users with the least-privilege rules of redis-acl.ts
    // (their passwords from their own Secrets, expanded by the kubelet); `default` is the admin.
    const prefix = serviceConfig(env, 'api').parsed.REDIS_KEY_PREFIX;
    const users = (['api', 'worker'] as const).flatMap((component) => {
      const user = env.credentials.create?.secrets[component].REDIS_USERNAME ?? `${APP}-${component}`;
      return ['--user', user, ...aclRules(prefix, `>$(${component.toUpperCase()}_REDIS_PASS)`)];
    });
    store(this, DevDatastores.REDIS, {
      component: 'redis',
      image: 'redis:7',
      port: 6379,
      dataPath: '/data',
      extraMounts: [{ name: 'tmp', mountPath: '/tmp' }],
      container: {
        // $(VAR) is expanded by the kubelet from the env below.
        args: ['--requirepass', '$(REDIS_ADMIN_PASSWORD)', '--appendonly', 'yes', '--dir', '/data', '--maxmemory-policy', 'noeviction', ...users],
        env: [
          fromSecret('REDIS_ADMIN_PASSWORD', DATASTORES_SECRET, 'REDIS_ADMIN_PASSWORD'),
          fromSecret('API_REDIS_PASS', secrets.api, 'REDIS_PASS'),
          fromSecret('WORKER_REDIS_PASS', secrets.worker, 'REDIS_PASS'),
        ],
        readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(6379) }, periodSeconds: 5 },
        livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(6379) }, periodSeconds: 10, initialDelaySeconds: 10 },
      },
    });
  }
}
