/**
 * The Helm chart (charts/task-scheduler/) is the prod environment with its operator-facing
 * settings turned into values. It is synthesized from the same constructs as the plain manifests:
 * the prod settings are given marker values, the chart is synthesized, and every marker in the
 * output becomes a template expression (numbers inside text too, such as the autoscaler's PromQL).
 * Objects that exist for one autoscaler kind only are wrapped in an `if` on
 * `.Values.autoscaling.kind`. A test renders the templates with values.yaml and expects exactly
 * the prod manifests back. values.schema.json refuses values the templates cannot refuse
 * (an HPA scaling to zero).
 */
import { yamlText } from './yaml-text';
import { synthEnvironment } from './chart';
import { valuesSchema } from './helm-values-schema';
import type { SettingName } from '../services/core/config/config';
import type { AutoscalerKind, EnvironmentSettings } from './settings';
import { serviceConfig, type Sources } from './sources';

type Json = Record<string, any>;

/** Settings that shape the manifests (ports, grace periods); changed in cdk8s/settings.ts, not in values. */
// UI_BASE_PATH is a path of the Ingress: a value could move the console without moving its route.
export const STRUCTURAL_SETTINGS = ['API_ADDR', 'METRICS_ADDR', 'SHUTDOWN_GRACE_MS', 'UI_BASE_PATH', 'WORKER_STOP_MARGIN_MS'];

interface Hole {
  expr: string;
  value: string | number;
}

/** Markers survive name sanitizing (lowercase alphanumerics) and never occur in real output. */
const marker = (i: number) => `zzhelm${i}zz`;
const numberMarker = (i: number) => 9_876_500 + i;
/**
 * Markers of numeric service settings stay in the setting's range, so the marked config still
 * parses; a clash with real output would show as a drift-test failure (rendered ≠ prod).
 */
const configNumberMarker = (i: number) => 9_871 + i;

function markers(prod: EnvironmentSettings) {
  const strings: Record<string, Hole> = {
    namespace: { expr: '.Release.Namespace', value: prod.namespace },
    imageRegistry: { expr: '.Values.image.registry', value: prod.imageRegistry },
    imageTag: { expr: '.Values.image.tag', value: prod.imageTag },
    imagePullPolicy: { expr: '.Values.image.pullPolicy', value: prod.imagePullPolicy },
    release: { expr: '.Values.image.tag | lower | replace "." "-"', value: prod.release },
    ingressClass: { expr: '.Values.ingress.className', value: prod.ingress.className },
    ingressHost: { expr: '.Values.ingress.host', value: prod.ingress.host },
    tlsSecret: { expr: '.Values.ingress.tlsSecretName', value: prod.ingress.tlsSecretName },
    controllerNamespace: { expr: '.Values.ingress.controllerNamespace', value: prod.ingress.controllerNamespace },
    monitoringNamespace: { expr: '.Values.monitoring.namespace', value: prod.monitoring.namespace },
    releaseLabel: { expr: '.Values.monitoring.release', value: prod.monitoring.releaseLabel },
    prometheusUrl: { expr: '.Values.autoscaling.prometheusUrl', value: prod.autoscaling.prometheusUrl },
    apiSecret: { expr: '.Values.credentials.api', value: prod.credentials.secretNames.api },
    workerSecret: { expr: '.Values.credentials.worker', value: prod.credentials.secretNames.worker },
    migratorSecret: { expr: '.Values.credentials.migrator', value: prod.credentials.secretNames.migrator },
    bootstrapSecret: { expr: '.Values.credentials.bootstrapAdminKey', value: prod.credentials.bootstrapSecretName },
    caConfigMap: { expr: '.Values.credentials.caConfigMap', value: prod.credentials.caConfigMap },
    postgresCidr: { expr: '.Values.egress.postgres.cidr', value: prod.egress.postgres.cidr },
    redisCidr: { expr: '.Values.egress.redis.cidr', value: prod.egress.redis.cidr },
  };
  const numbers: Record<string, Hole> = {
    apiReplicas: { expr: '.Values.api.replicas', value: prod.api.replicas },
    minReplicas: { expr: '.Values.worker.minReplicas', value: prod.worker.minReplicas },
    maxReplicas: { expr: '.Values.worker.maxReplicas', value: prod.worker.maxReplicas },
    tasksPerWorker: { expr: '.Values.autoscaling.tasksPerWorker', value: prod.autoscaling.tasksPerWorker },
    targetOldestWaitSeconds: { expr: '.Values.autoscaling.targetOldestWaitSeconds', value: prod.autoscaling.targetOldestWaitSeconds },
    postgresPort: { expr: '.Values.egress.postgres.port', value: prod.egress.postgres.port },
    redisPort: { expr: '.Values.egress.redis.port', value: prod.egress.redis.port },
  };
  // Service settings that shape other objects: WORKER_POOL is in the autoscaler's PromQL.
  const configNumbers: Partial<Record<SettingName, Hole>> = { WORKER_POOL: { expr: '.Values.config.WORKER_POOL', value: serviceConfig(prod, 'worker').parsed.WORKER_POOL } };
  const stringMarkers = Object.fromEntries(Object.keys(strings).map((k, i) => [k, marker(i)])) as Record<keyof typeof strings, string>;
  const numberMarkers = Object.fromEntries(Object.keys(numbers).map((k, i) => [k, numberMarker(i)])) as Record<keyof typeof numbers, number>;
  const configMarkers = Object.fromEntries(Object.keys(configNumbers).map((k, i) => [k, String(configNumberMarker(i))])) as Partial<Record<SettingName, string>>;
  const byString = new Map(Object.entries(strings).map(([k, h]) => [stringMarkers[k]!, h]));
  const byNumber = new Map([
    ...Object.entries(numbers).map(([k, h]) => [numberMarkers[k]!, h] as const),
    ...Object.entries(configNumbers).map(([k, h]) => [Number(configMarkers[k as SettingName]), h!] as const),
  ]);
  // Any marker inside a longer string, a number only where no digit or dot continues it.
  const inText = new RegExp(`(zzhelm\\d+zz|(?<![\\d.])(?:${[...byNumber.keys()].join('|')})(?![\\d.]))`);
  return { stringMarkers, numberMarkers, configMarkers, byString, byNumber, inText };
}

function markedEnvironment(prod: EnvironmentSettings, kind: AutoscalerKind, m: ReturnType<typeof markers>): EnvironmentSettings {
  const s = m.stringMarkers;
  const n = m.numberMarkers;
  return {
    ...prod,
    namespace: s.namespace!,
    imageRegistry: s.imageRegistry!,
    imageTag: s.imageTag!,
    imagePullPolicy: s.imagePullPolicy as EnvironmentSettings['imagePullPolicy'],
    release: s.release!,
    api: { ...prod.api, replicas: n.apiReplicas! },
    worker: { ...prod.worker, minReplicas: n.minReplicas!, maxReplicas: n.maxReplicas! },
    autoscaling: { ...prod.autoscaling, kind, prometheusUrl: s.prometheusUrl!, tasksPerWorker: n.tasksPerWorker!, targetOldestWaitSeconds: n.targetOldestWaitSeconds! },
    ingress: { className: s.ingressClass!, host: s.ingressHost!, tlsSecretName: s.tlsSecret!, controllerNamespace: s.controllerNamespace! },
    monitoring: { ...prod.monitoring, namespace: s.monitoringNamespace!, releaseLabel: s.releaseLabel! },
    credentials: {
      ...prod.credentials,
      secretNames: { api: s.apiSecret!, worker: s.workerSecret!, migrator: s.migratorSecret! },
      bootstrapSecretName: s.bootstrapSecret!,
      caConfigMap: s.caConfigMap!,
    },
    egress: {
      ...prod.egress,
      postgres: { cidr: s.postgresCidr!, port: n.postgresPort! },
      redis: { cidr: s.redisCidr!, port: n.redisPort! },
    },
    config: { ...prod.config, ...m.configMarkers },
  };
}

const CONFIG_MAPS = /^task-scheduler-(api|worker|migrator)-config$/;

/**
 * Literal `{{`/`}}` (Grafana legends, alert annotations) must reach the cluster as they are, not
 * be read by Helm: each becomes a raw-string action, {{ `{{` }}, which YAML quoting leaves alone.
 */
export function escapeForHelm(text: string): string {
  return text.replace(/\{\{|\}\}/g, (m) => `{{ \`${m}\` }}`);
}

/** Replaces markers with placeholders; returns the object and the placeholder → template text map. */
function templatize(obj: Json, m: ReturnType<typeof markers>, placeholders: Map<string, string>): Json {
  const placeholder = (text: string) => {
    const key = `HELMPLACEHOLDER${placeholders.size}X`;
    placeholders.set(key, text);
    return key;
  };
  const walk = (v: unknown): unknown => {
    // Numbers that had to become strings (KEDA's threshold) are markers too.
    if (typeof v === 'string' && /^\d+$/.test(v) && m.byNumber.has(Number(v))) return placeholder(`{{ ${m.byNumber.get(Number(v))!.expr} | quote }}`);
    if (typeof v === 'string' && m.inText.test(v)) {
      const whole = m.byString.get(v);
      if (whole) return placeholder(`{{ ${whole.expr} | quote }}`);
      const parts = v.split(m.inText).map((part) => {
        const hole = m.byString.get(part) ?? (/^\d+$/.test(part) ? m.byNumber.get(Number(part)) : undefined);
        return hole ? `{{ ${hole.expr} }}` : escapeForHelm(JSON.stringify(part).slice(1, -1));
      });
      return placeholder(`"${parts.join('')}"`);
    }
    if (typeof v === 'string') return escapeForHelm(v);
    if (typeof v === 'number' && m.byNumber.has(v)) return placeholder(`{{ ${m.byNumber.get(v)!.expr} }}`);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const out = walk(obj) as Json;
  if (out.kind === 'ConfigMap' && CONFIG_MAPS.test(obj.metadata?.name ?? '')) {
    for (const key of Object.keys(out.data ?? {})) {
      if (!STRUCTURAL_SETTINGS.includes(key)) out.data[key] = placeholder(`{{ .Values.config.${key} | quote }}`);
    }
  }
  return out;
}

const keyOf = (o: Json) => `${o.kind}/${o.metadata?.name}`;

export interface HelmChart {
  /** Paths relative to the chart directory → content. */
  files: Record<string, string>;
  values: Json;
}

export function helmChart(prod: EnvironmentSettings, sources: Sources, version: string): HelmChart {
  const m = markers(prod);
  const variants = (['keda', 'hpa'] as const).map((kind) => ({
    kind,
    objects: synthEnvironment(markedEnvironment(prod, kind, m), sources).filter((o) => o.kind !== 'Namespace'),
  }));
  const [keda, hpa] = variants as [(typeof variants)[0], (typeof variants)[0]];
  const hpaByKey = new Map(hpa.objects.map((o) => [keyOf(o), o]));
  const kedaKeys = new Set(keda.objects.map(keyOf));
  const entries: { obj: Json; only?: AutoscalerKind }[] = [];
  for (const obj of keda.objects) {
    const other = hpaByKey.get(keyOf(obj));
    if (!other) entries.push({ obj, only: 'keda' });
    else if (JSON.stringify(other) !== JSON.stringify(obj)) throw new Error(`${keyOf(obj)} differs between autoscaler kinds; the chart cannot template that`);
    else entries.push({ obj });
  }
  for (const obj of hpa.objects) if (!kedaKeys.has(keyOf(obj))) entries.push({ obj, only: 'hpa' });

  const files: Record<string, string> = {};
  const header = '# Generated by `npm run synth` from cdk8s/ — do not edit.\n';
  for (const { obj, only } of entries) {
    const placeholders = new Map<string, string>();
    let text = yamlText(templatize(obj, m, placeholders));
    // Longest first, so HELMPLACEHOLDER1X never eats the start of HELMPLACEHOLDER12X.
    for (const [key, template] of [...placeholders].sort((a, b) => b[0].length - a[0].length)) text = text.split(key).join(template);
    if (only) text = `{{- if eq .Values.autoscaling.kind "${only}" }}\n${text}{{- end }}\n`;
    files[`templates/${obj.kind.toLowerCase()}-${String(obj.metadata.name).replace(/-?zzhelm\d+zz/g, '')}.yaml`] = header + text;
  }

  const config: Record<string, string> = {};
  for (const service of ['api', 'worker', 'migrator'] as const) {
    for (const [k, v] of Object.entries(serviceConfig(prod, service).data)) if (!STRUCTURAL_SETTINGS.includes(k)) config[k] = v;
  }
  const values = {
    image: { registry: prod.imageRegistry, tag: prod.imageTag, pullPolicy: prod.imagePullPolicy },
    api: { replicas: prod.api.replicas },
    worker: { minReplicas: prod.worker.minReplicas, maxReplicas: prod.worker.maxReplicas },
    autoscaling: {
      kind: prod.autoscaling.kind,
      tasksPerWorker: prod.autoscaling.tasksPerWorker,
      targetOldestWaitSeconds: prod.autoscaling.targetOldestWaitSeconds,
      prometheusUrl: prod.autoscaling.prometheusUrl,
    },
    ingress: { className: prod.ingress.className, host: prod.ingress.host, tlsSecretName: prod.ingress.tlsSecretName, controllerNamespace: prod.ingress.controllerNamespace },
    monitoring: { namespace: prod.monitoring.namespace, release: prod.monitoring.releaseLabel },
    credentials: {
      api: prod.credentials.secretNames.api,
      worker: prod.credentials.secretNames.worker,
      migrator: prod.credentials.secretNames.migrator,
      bootstrapAdminKey: prod.credentials.bootstrapSecretName,
      caConfigMap: prod.credentials.caConfigMap,
    },
    egress: { postgres: prod.egress.postgres, redis: prod.egress.redis },
    config: Object.fromEntries(Object.entries(config).sort(([a], [b]) => a.localeCompare(b))),
  };
  files['values.yaml'] =
    `${header}# autoscaling.kind: keda (ScaledObject; needs KEDA) or hpa (HPA on External metrics; needs
# prometheus-adapter installed with rules.existing=task-scheduler-prometheus-adapter).
# autoscaling.tasksPerWorker: waiting tasks per worker; autoscaling.targetOldestWaitSeconds: the
#   oldest waiting task's age above which workers are added in proportion (docs/autoscaling.md).
# worker.minReplicas: 0 scales the workers to zero while no task waits, runs or waits for a retry
#   (keda only; the first task then waits for a worker to start).
# credentials: existing Secrets, created by the operator (docs/security.md): api and worker each with
#   POSTGRES_URL (its own DML-only login), REDIS_USERNAME and REDIS_PASS (its own Redis ACL user);
#   migrator with POSTGRES_URL (the schema's owner); bootstrapAdminKey with BOOTSTRAP_ADMIN_KEY
#   (optional); caConfigMap: a ConfigMap of CA bundles mounted at /etc/task-scheduler/ca.
# egress: address blocks and ports of the managed Postgres and Redis the pods may reach.
# config: the services' settings (services/core/config/config.ts); ${STRUCTURAL_SETTINGS.join(', ')}
# shape the manifests and are set in cdk8s/settings.ts instead.
` + yamlText(values);
  files['values.schema.json'] = `${JSON.stringify(valuesSchema(), null, 2)}\n`;
  files['Chart.yaml'] =
    header +
    yamlText({
      apiVersion: 'v2',
      name: 'task-scheduler',
      description: 'Task scheduler: HTTP API, workers autoscaled on queue depth and wait, and a per-release migrator Job.',
      type: 'application',
      version,
      appVersion: version,
      kubeVersion: '>=1.27.0-0',
    });
  return { files, values };
}
