/**
 * The three services: the api (Deployment, Service, Ingress), the worker (Deployment and a
 * headless Service for its metrics) and the migrator (a Job named after the release), each with
 * its ConfigMap generated from the settings table and its own credentials Secret, plus
 * PodDisruptionBudgets.
 */
import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PUBLIC_API_ROOTS, type ServiceName } from '../../services/core/config/config';
import { imageOf, nameFragment, type EnvironmentSettings } from '../settings';
import { portOf, serviceConfig, type ServiceConfig, type Sources } from '../sources';
import {
  APP,
  caMounts,
  containerSecurityContext,
  finishPodSpec,
  httpProbe,
  labels,
  nodeHeapEnv,
  podSecurityContext,
  resources,
  secretEnv,
  selectorLabels,
  tmpMount,
  waitForSchemaContainer,
} from './pods';

/** Seconds the api keeps serving after it is taken out of the Service, so no request hits a closed port. */
export const API_PRE_STOP_SECONDS = 5;
/** Seconds a worker pod gets past SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS, when its process exits anyway. */
const WORKER_EXIT_SLACK_SECONDS = 5;

export interface Workloads {
  apiService: kplus.Service;
  workerDeployment: kplus.Deployment;
  apiDeployment: kplus.Deployment;
  migratorJob: kplus.Job;
  ports: { api: number; apiMetrics: number; workerMetrics: number };
}

function configMap(scope: Construct, service: ServiceName, cfg: ServiceConfig): kplus.ConfigMap {
  return new kplus.ConfigMap(scope, `${service}-config`, {
    metadata: { name: `${APP}-${service}-config`, labels: labels(service) },
    data: cfg.data,
  });
}

function pullPolicy(env: EnvironmentSettings): kplus.ImagePullPolicy {
  // The enum's values are the API's strings.
  return env.imagePullPolicy as kplus.ImagePullPolicy;
}

export class TaskSchedulerWorkloads extends Construct implements Workloads {
  readonly apiService: kplus.Service;
  readonly apiDeployment: kplus.Deployment;
  readonly workerDeployment: kplus.Deployment;
  readonly migratorJob: kplus.Job;
  readonly ports: Workloads['ports'];

  constructor(scope: Construct, id: string, env: EnvironmentSettings, sources: Sources) {
    super(scope, id);
    const api = serviceConfig(env, 'api');
    const worker = serviceConfig(env, 'worker');
    const migrator = serviceConfig(env, 'migrator');
    this.ports = {
      api: portOf(api.parsed.API_ADDR),
      apiMetrics: portOf(api.parsed.METRICS_ADDR),
      workerMetrics: portOf(worker.parsed.METRICS_ADDR),
    };
    const creds = env.credentials;
    // Each component reads its own Secret; the api also reads the bootstrap admin key, if the
    // operator created that Secret.
    const credentials = (service: ServiceName, cfg: ServiceConfig) => ({
      ...secretEnv(this, creds.secretNames[service], cfg.secretKeys.filter((k) => k !== 'BOOTSTRAP_ADMIN_KEY')),
      ...(cfg.secretKeys.includes('BOOTSTRAP_ADMIN_KEY') ? secretEnv(this, creds.bootstrapSecretName, ['BOOTSTRAP_ADMIN_KEY'], true) : {}),
    });
    const ca = {
      api: caMounts(this, 'api-ca', creds.caConfigMap),
      worker: caMounts(this, 'worker-ca', creds.caConfigMap),
      migrator: caMounts(this, 'migrator-ca', creds.caConfigMap),
    };
    const waitForSchema = (service: 'api' | 'worker') =>
      waitForSchemaContainer({
        scope: this,
        id: `${service}-wait-for-schema`,
        image: imageOf(env, service),
        imagePullPolicy: pullPolicy(env),
        secretName: creds.secretNames[service],
        caMounts: ca[service],
        schemaVersion: sources.schemaVersion,
        script: sources.waitForSchemaScript,
      });

    // --- api ---
    const apiConfig = configMap(this, 'api', api);
    const apiGraceSeconds = API_PRE_STOP_SECONDS + Math.ceil(api.parsed.SHUTDOWN_GRACE_MS / 1000) + 5;
    this.apiDeployment = new kplus.Deployment(this, 'api', {
      metadata: { name: `${APP}-api`, labels: labels('api') },
      select: false,
      replicas: env.api.replicas,
      podMetadata: { labels: labels('api') },
      strategy: kplus.DeploymentStrategy.rollingUpdate({ maxSurge: kplus.PercentOrAbsolute.percent(25), maxUnavailable: kplus.PercentOrAbsolute.absolute(0) }),
      securityContext: podSecurityContext(),
      terminationGracePeriod: Duration.seconds(apiGraceSeconds),
      initContainers: [waitForSchema('api')],
      containers: [
        {
          name: 'api',
          image: imageOf(env, 'api'),
          imagePullPolicy: pullPolicy(env),
          ports: [
            { name: 'http', number: this.ports.api },
            { name: 'metrics', number: this.ports.apiMetrics },
          ],
          envFrom: [kplus.Env.fromConfigMap(apiConfig)],
          envVariables: { ...credentials('api', api), ...nodeHeapEnv(env.api.resources) },
          // /readyz while Postgres answers (within READINESS_TIMEOUT_MS, under the probe's 3 s): with
          // Redis away the api still accepts tasks, so it stays in rotation. /healthz while it lives,
          // asked on the metrics server: at HTTP_MAX_CONNECTIONS the api port refuses new
          // connections, which takes the pod out of rotation but must not get it restarted.
          readiness: httpProbe('/readyz', this.ports.api, 5),
          liveness: httpProbe('/healthz', this.ports.apiMetrics, 10),
          // The endpoint controller and ingress need a moment to stop routing to a terminating pod.
          lifecycle: { preStop: kplus.Handler.fromCommand(['sleep', String(API_PRE_STOP_SECONDS)]) },
          securityContext: containerSecurityContext(),
          resources: resources(env.api.resources),
          volumeMounts: [tmpMount(this, 'api-tmp'), ...ca.api],
        },
      ],
    });
    this.apiDeployment.select(kplus.LabelSelector.of({ labels: selectorLabels('api') }));
    finishPodSpec(this.apiDeployment, '/spec/template/spec', '/spec/template/metadata/labels');

    this.apiService = new kplus.Service(this, 'api-service', {
      metadata: { name: `${APP}-api`, labels: labels('api') },
      ports: [
        { name: 'http', port: this.ports.api, targetPort: this.ports.api },
        { name: 'metrics', port: this.ports.apiMetrics, targetPort: this.ports.apiMetrics },
      ],
    });
    for (const [k, v] of Object.entries(selectorLabels('api'))) this.apiService.selectLabel(k, v);

    new kplus.Ingress(this, 'api-ingress', {
      metadata: { name: `${APP}-api`, labels: labels('api') },
      className: env.ingress.className,
      // Every public API path and the web console (UI_BASE_PATH, which speaks them all); health
      // checks and metrics stay inside the cluster.
      rules: [...PUBLIC_API_ROOTS.map((root) => `/${root}`), api.parsed.UI_BASE_PATH].map((path) => ({
        host: env.ingress.host || undefined,
        path,
        pathType: kplus.HttpIngressPathType.PREFIX,
        backend: kplus.IngressBackend.fromService(this.apiService, { port: this.ports.api }),
      })),
      tls: env.ingress.tlsSecretName
        ? [{ hosts: env.ingress.host ? [env.ingress.host] : undefined, secret: kplus.Secret.fromSecretName(this, 'tls-ref', env.ingress.tlsSecretName) }]
        : undefined,
    });

    // --- worker ---
    const workerConfig = configMap(this, 'worker', worker);
    // SIGTERM: stop leasing, let handlers finish within SHUTDOWN_GRACE_MS, hand back the rest,
    // flush outcomes, close pools. No preStop: no traffic is routed to workers.
    const workerGraceSeconds = Math.ceil((worker.parsed.SHUTDOWN_GRACE_MS + worker.parsed.WORKER_STOP_MARGIN_MS) / 1000) + WORKER_EXIT_SLACK_SECONDS;
    this.workerDeployment = new kplus.Deployment(this, 'worker', {
      metadata: { name: `${APP}-worker`, labels: labels('worker') },
      select: false,
      podMetadata: { labels: labels('worker') },
      strategy: kplus.DeploymentStrategy.rollingUpdate({ maxSurge: kplus.PercentOrAbsolute.percent(25), maxUnavailable: kplus.PercentOrAbsolute.percent(25) }),
      securityContext: podSecurityContext(),
      terminationGracePeriod: Duration.seconds(workerGraceSeconds),
      initContainers: [waitForSchema('worker')],
      containers: [
        {
          name: 'worker',
          image: imageOf(env, 'worker'),
          imagePullPolicy: pullPolicy(env),
          ports: [{ name: 'metrics', number: this.ports.workerMetrics }],
          envFrom: [kplus.Env.fromConfigMap(workerConfig)],
          envVariables: { ...credentials('worker', worker), ...nodeHeapEnv(env.worker.resources) },
          // The worker's metrics server: /readyz while Postgres and Redis answer, /healthz while it lives.
          readiness: httpProbe('/readyz', this.ports.workerMetrics, 5),
          liveness: httpProbe('/healthz', this.ports.workerMetrics, 10),
          securityContext: containerSecurityContext(),
          resources: resources(env.worker.resources),
          volumeMounts: [tmpMount(this, 'worker-tmp'), ...ca.worker],
        },
      ],
    });
    // The autoscaler owns the replica count; a replicas field would reset it on every apply.
    this.workerDeployment.markHasAutoscaler();
    this.workerDeployment.select(kplus.LabelSelector.of({ labels: selectorLabels('worker') }));
    finishPodSpec(this.workerDeployment, '/spec/template/spec', '/spec/template/metadata/labels');

    new kplus.k8s.KubeService(this, 'worker-metrics', {
      metadata: { name: `${APP}-worker-metrics`, labels: labels('worker') },
      spec: {
        clusterIp: 'None',
        selector: selectorLabels('worker'),
        ports: [{ name: 'metrics', port: this.ports.workerMetrics, targetPort: kplus.k8s.IntOrString.fromNumber(this.ports.workerMetrics) }],
      },
    });

    // --- migrator ---
    const migratorConfig = configMap(this, 'migrator', migrator);
    this.migratorJob = new kplus.Job(this, 'migrator', {
      // A new name per release: a Job's pod template is immutable, and each release must migrate.
      metadata: { name: `${APP}-migrate-${nameFragment(env.release)}`, labels: labels('migrator') },
      podMetadata: { labels: labels('migrator') },
      backoffLimit: 4,
      activeDeadline: Duration.minutes(10),
      ttlAfterFinished: Duration.days(1),
      securityContext: podSecurityContext(),
      containers: [
        {
          name: 'migrator',
          image: imageOf(env, 'migrator'),
          imagePullPolicy: pullPolicy(env),
          envFrom: [kplus.Env.fromConfigMap(migratorConfig)],
          envVariables: { ...credentials('migrator', migrator), ...nodeHeapEnv(env.migrator.resources) },
          securityContext: containerSecurityContext(),
          resources: resources(env.migrator.resources),
          volumeMounts: [tmpMount(this, 'migrator-tmp'), ...ca.migrator],
        },
      ],
    });
    finishPodSpec(this.migratorJob, '/spec/template/spec', '/spec/template/metadata/labels');

    // --- disruption budgets ---
    new kplus.k8s.KubePodDisruptionBudget(this, 'api-pdb', {
      metadata: { name: `${APP}-api`, labels: labels('api') },
      spec: { maxUnavailable: kplus.k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorLabels('api') } },
    });
    new kplus.k8s.KubePodDisruptionBudget(this, 'worker-pdb', {
      metadata: { name: `${APP}-worker`, labels: labels('worker') },
      spec: { maxUnavailable: kplus.k8s.IntOrString.fromString('25%'), selector: { matchLabels: selectorLabels('worker') } },
    });
  }
}

