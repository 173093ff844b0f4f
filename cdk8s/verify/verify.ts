/**
 * The checks of `npm run k8s:verify`, on small interfaces so they can be tested against a fake
 * API server: the migrator Job finished, the api and worker rollouts completed, the autoscaler
 * reads its metrics (queue depth and oldest wait) or idles at zero workers, and a task submitted
 * through the ingress succeeds (which, at zero workers, shows KEDA starting one).
 */
import http from 'node:http';
import https from 'node:https';
import type { EnvironmentSettings } from '../settings';
import { nameFragment } from '../settings';
import { KEDA_TRIGGERS, OLDEST_WAIT_METRIC, QUEUE_DEPTH_METRIC } from '../lib/names';

type Json = Record<string, any>;

/** Reads of the cluster the checks need; `undefined` means not found (404). */
export interface ClusterReader {
  job(namespace: string, name: string): Promise<Json | undefined>;
  deployment(namespace: string, name: string): Promise<Json | undefined>;
  hpa(namespace: string, name: string): Promise<Json | undefined>;
  scaledObject(namespace: string, name: string): Promise<Json | undefined>;
}

export interface VerifyOptions {
  env: EnvironmentSettings;
  namespace: string;
  /** Base URL of the ingress, e.g. http://127.0.0.1:8088. */
  url: string;
  timeoutMs: number;
  intervalMs: number;
  log: (line: string) => void;
  /** API key sent as `Authorization: Bearer …` (the api requires one unless AUTH_MODE=off). */
  apiKey?: string;
}

/** One poll: done (with a summary), still waiting (with why), or failed for good. */
type Poll = { state: 'done'; detail: string } | { state: 'waiting'; detail: string } | { state: 'failed'; detail: string };

const condition = (obj: Json | undefined, type: string) => (obj?.status?.conditions ?? []).find((c: Json) => c.type === type);

export function jobState(job: Json | undefined): Poll {
  if (!job) return { state: 'waiting', detail: 'not created yet' };
  const failed = condition(job, 'Failed');
  if (failed?.status === 'True') return { state: 'failed', detail: `failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim() };
  if ((job.status?.succeeded ?? 0) >= 1) return { state: 'done', detail: 'succeeded' };
  return { state: 'waiting', detail: `active ${job.status?.active ?? 0}, failed attempts ${job.status?.failed ?? 0}` };
}

/** The same test as `kubectl rollout status`. */
export function rolloutState(d: Json | undefined): Poll {
  if (!d) return { state: 'waiting', detail: 'not created yet' };
  const progressing = condition(d, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') return { state: 'failed', detail: `progress deadline exceeded: ${progressing.message ?? ''}`.trim() };
  const s = d.status ?? {};
  const want = d.spec?.replicas ?? 1;
  if ((d.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) return { state: 'waiting', detail: 'spec change not observed yet' };
  if ((s.updatedReplicas ?? 0) < want) return { state: 'waiting', detail: `${s.updatedReplicas ?? 0} of ${want} replicas updated` };
  if ((s.replicas ?? 0) > (s.updatedReplicas ?? 0)) return { state: 'waiting', detail: `${(s.replicas ?? 0) - (s.updatedReplicas ?? 0)} old replicas pending termination` };
  if ((s.availableReplicas ?? 0) < (s.updatedReplicas ?? 0)) return { state: 'waiting', detail: `${s.availableReplicas ?? 0} of ${s.updatedReplicas} updated replicas available` };
  // The API server leaves out zero counts (a deployment at zero replicas has none).
  return { state: 'done', detail: `${s.availableReplicas ?? 0} of ${want} replicas available` };
}

/** Metric of the worker's HPA: where to find it in status.currentMetrics and what to call it in the log. */
interface ExpectedMetric {
  label: string;
  matches: (name: string) => boolean;
}

/** KEDA names trigger i's metric `s<i>-<scaler>`; the adapter serves ours under their own names. */
function expectedMetrics(kind: EnvironmentSettings['autoscaling']['kind']): ExpectedMetric[] {
  if (kind === 'keda') return KEDA_TRIGGERS.map((label, i) => ({ label, matches: (name) => name.startsWith(`s${i}-`) }));
  return [QUEUE_DEPTH_METRIC, OLDEST_WAIT_METRIC].map((label) => ({ label, matches: (name) => name === label }));
}

/**
 * The HPA (KEDA's or ours) has a current value for each of its metrics (queue depth, oldest wait,
 * and KEDA's leases-and-retries), or KEDA holds an idle deployment at zero (it wakes a worker when a
 * task waits, which the task check then shows).
 */
export function autoscalerState(kind: EnvironmentSettings['autoscaling']['kind'], hpa: Json | undefined, scaledObject: Json | undefined): Poll {
  if (kind === 'keda') {
    if (!scaledObject) return { state: 'waiting', detail: 'ScaledObject not created yet' };
    const ready = condition(scaledObject, 'Ready');
    if (ready?.status === 'False') return { state: 'waiting', detail: `ScaledObject not ready: ${ready.reason ?? ''} ${ready.message ?? ''}`.trim() };
    if (ready?.status !== 'True') return { state: 'waiting', detail: 'ScaledObject has no Ready condition yet' };
    const triggers = (scaledObject.spec?.triggers ?? []).map((t: Json) => t.name);
    if (triggers.join() !== KEDA_TRIGGERS.join()) return { state: 'waiting', detail: `ScaledObject triggers are [${triggers.join(', ')}], not [${KEDA_TRIGGERS.join(', ')}]` };
  }
  if (!hpa) return { state: 'waiting', detail: 'HorizontalPodAutoscaler not created yet' };
  const active = condition(hpa, 'ScalingActive');
  // At zero replicas the HPA is off (ScalingDisabled) and KEDA alone decides when to start a worker.
  if (kind === 'keda' && scaledObject?.spec?.minReplicaCount === 0 && (hpa.status?.currentReplicas ?? 0) === 0 && active?.reason === 'ScalingDisabled') {
    const activity = condition(scaledObject, 'Active');
    return { state: 'done', detail: `idle at zero replicas (Active=${activity?.status ?? '?'}); KEDA starts a worker when a task waits` };
  }
  const external = (hpa.status?.currentMetrics ?? []).filter((m: Json) => m.type === 'External' && m.external);
  const values: string[] = [];
  for (const want of expectedMetrics(kind)) {
    const metric = external.find((m: Json) => want.matches(m.external.metric?.name ?? ''));
    const current = metric?.external.current;
    if (current?.averageValue !== undefined) values.push(`${want.label} = ${current.averageValue} per replica`);
    else if (current?.value !== undefined) values.push(`${want.label} = ${current.value}`);
    else {
      const why = active?.status === 'False' ? `ScalingActive=False: ${active.reason ?? ''} ${active.message ?? ''}`.trim() : `no current value for ${want.label} yet`;
      return { state: 'waiting', detail: why };
    }
  }
  if (active?.status === 'False') return { state: 'waiting', detail: `ScalingActive=False: ${active.reason ?? ''} ${active.message ?? ''}`.trim() };
  return { state: 'done', detail: `${values.join(', ')}; ${hpa.status?.currentReplicas ?? '?'} → ${hpa.status?.desiredReplicas ?? '?'} replicas` };
}

async function poll(opts: VerifyOptions, what: string, deadline: number, step: () => Promise<Poll>): Promise<boolean> {
  let lastDetail = '';
  for (;;) {
    let result: Poll;
    try {
      result = await step();
    } catch (err) {
      result = { state: 'waiting', detail: `error: ${(err as Error).message}` };
    }
    if (result.state === 'done') {
      opts.log(`✔ ${what}: ${result.detail}`);
      return true;
    }
    if (result.state === 'failed') {
      opts.log(`✘ ${what}: ${result.detail}`);
      return false;
    }
    if (result.detail !== lastDetail) opts.log(`… ${what}: ${result.detail}`);
    lastDetail = result.detail;
    if (Date.now() + opts.intervalMs > deadline) {
      opts.log(`✘ ${what}: timed out; last seen: ${result.detail}`);
      return false;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs));
  }
}

/**
 * One HTTP request to the ingress. node:http rather than fetch: fetch drops a Host header, and the
 * ingress routes by host when the environment names one.
 */
function request(opts: VerifyOptions, method: string, pathname: string, body?: unknown): Promise<{ status: number; text: string }> {
  const url = new URL(pathname, opts.url);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.env.ingress.host) headers.host = opts.env.ingress.host;
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, { method, headers, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** POSTs a noop task through the ingress. */
async function submitTask(opts: VerifyOptions): Promise<Poll> {
  const res = await request(opts, 'POST', '/tasks', { type: 'noop', priority: 'high', payload: { from: 'k8s:verify' } });
  if (res.status !== 201 && res.status !== 200) return { state: 'waiting', detail: `POST /tasks answered ${res.status}: ${res.text.slice(0, 200)}` };
  return { state: 'done', detail: (JSON.parse(res.text) as { id: string }).id };
}

async function taskStatus(opts: VerifyOptions, id: string): Promise<Poll> {
  const res = await request(opts, 'GET', `/tasks/${id}`);
  if (res.status !== 200) return { state: 'waiting', detail: `GET /tasks/${id} answered ${res.status}` };
  const task = JSON.parse(res.text) as { status: string; attempts: number; last_error: string | null };
  if (task.status === 'succeeded') return { state: 'done', detail: `task ${id} succeeded after ${task.attempts} attempt(s)` };
  if (task.status === 'dead') return { state: 'failed', detail: `task ${id} is dead: ${task.last_error}` };
  return { state: 'waiting', detail: `task ${id} is ${task.status}` };
}

export async function verify(opts: VerifyOptions, cluster: ClusterReader): Promise<boolean> {
  const deadline = Date.now() + opts.timeoutMs;
  const ns = opts.namespace;
  const jobName = `task-scheduler-migrate-${nameFragment(opts.env.release)}`;
  opts.log(`verifying ${opts.env.name} in namespace ${ns} (ingress ${opts.url}, timeout ${Math.round(opts.timeoutMs / 1000)} s)`);

  const results: boolean[] = [];
  results.push(await poll(opts, `migrator Job ${jobName}`, deadline, async () => jobState(await cluster.job(ns, jobName))));
  for (const name of ['task-scheduler-api', 'task-scheduler-worker']) {
    results.push(await poll(opts, `rollout of Deployment ${name}`, deadline, async () => rolloutState(await cluster.deployment(ns, name))));
  }
  const kind = opts.env.autoscaling.kind;
  results.push(
    await poll(opts, `${kind === 'keda' ? 'KEDA ScaledObject' : 'HPA'} task-scheduler-worker reads queue depth and oldest wait`, deadline, async () =>
      autoscalerState(kind, await cluster.hpa(ns, 'task-scheduler-worker'), kind === 'keda' ? await cluster.scaledObject(ns, 'task-scheduler-worker') : undefined),
    ),
  );
  if (results.every(Boolean)) {
    let id = '';
    const submitted = await poll(opts, `POST ${opts.url}/tasks`, deadline, async () => {
      const r = await submitTask(opts);
      if (r.state === 'done') id = r.detail;
      return r.state === 'done' ? { state: 'done', detail: `accepted task ${id}` } : r;
    });
    results.push(submitted);
    if (submitted) results.push(await poll(opts, 'task through the ingress', deadline, () => taskStatus(opts, id)));
  } else {
    opts.log('– task submission skipped: the deployment is not ready');
  }
  const ok = results.every(Boolean);
  opts.log(ok ? 'verify: all checks passed' : 'verify: FAILED');
  return ok;
}
