/**
 * Postgres and Redis as single-replica StatefulSets, for the dev profile only (prod points at
 * managed services). They run as their images' own uid 999 under the same restricted security
 * context as the app (read-only root; writable data volume, run directory and /tmp).
 */
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { EnvironmentSettings } from '../settings';
import { labels, selectorLabels, type Component } from './pods';

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
          volumes: props.extraMounts.map((m) => ({ name: m.name, emptyDir: { sizeLimit: quantity('64Mi') } })),
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

export class DevDatastores extends Construct {
  static readonly POSTGRES = 'task-scheduler-postgres';
  static readonly REDIS = 'task-scheduler-redis';

  constructor(scope: Construct, id: string, env: EnvironmentSettings) {
    super(scope, id);
    const secret = env.credentials.secretName;
    store(this, DevDatastores.POSTGRES, {
      component: 'postgres',
      image: 'postgres:16',
      port: 5432,
      dataPath: '/var/lib/postgresql/data',
      extraMounts: [
        { name: 'run', mountPath: '/var/run/postgresql' },
        { name: 'tmp', mountPath: '/tmp' },
      ],
      container: {
        env: [
          { name: 'POSTGRES_USER', value: 'app' },
          { name: 'POSTGRES_DB', value: 'app' },
          { name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: secret, key: 'POSTGRES_PASSWORD' } } },
          // A subdirectory: the volume's root holds lost+found on some provisioners.
          { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
        ],
        readinessProbe: { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', 'app', '-d', 'app'] }, periodSeconds: 5 },
        livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(5432) }, periodSeconds: 10, initialDelaySeconds: 30 },
      },
    });
    store(this, DevDatastores.REDIS, {
      component: 'redis',
      image: 'redis:7',
      port: 6379,
      dataPath: '/data',
      extraMounts: [{ name: 'tmp', mountPath: '/tmp' }],
      container: {
        // $(REDIS_PASS) is expanded by the kubelet from the env below.
        args: ['--requirepass', '$(REDIS_PASS)', '--appendonly', 'yes', '--dir', '/data', '--maxmemory-policy', 'noeviction'],
        env: [{ name: 'REDIS_PASS', valueFrom: { secretKeyRef: { name: secret, key: 'REDIS_PASS' } } }],
        readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(6379) }, periodSeconds: 5 },
        livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(6379) }, periodSeconds: 10, initialDelaySeconds: 10 },
      },
    });
  }
}
