/**
 * `npm run k8s:verify` against a fake Kubernetes API: a tiny HTTP server on 127.0.0.1 serving
 * recorded objects (test/k8s/fixtures/verify/) at the paths the tool reads, and the task
 * endpoints it calls through the ingress. The tool runs as a child process (tsx), as a user runs
 * it: @kubernetes/client-node 1.x is an ES module that jest's CommonJS runtime cannot load.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ENVIRONMENTS } from '../../cdk8s/settings';
import { REPO_ROOT } from '../../cdk8s/sources';
import { autoscalerState, jobState, rolloutState } from '../../cdk8s/verify/verify';
// Type-only: `npm test`'s tsc checks the CLI too, while jest never loads its ES-module dependency.
import type * as _verifyCli from '../../cdk8s/verify/main';

const fixture = (name: string) => JSON.parse(readFileSync(path.join(__dirname, 'fixtures/verify', `${name}.json`), 'utf8'));

type Reply = { status: number; body: unknown };
/** Route → replies in order; the last one repeats. */
type Routes = Record<string, Reply[]>;

const ok = (name: string): Reply => ({ status: 200, body: fixture(name) });
const NS = '/namespaces/task-scheduler';
const paths = {
  job: (name: string) => `GET /apis/batch/v1${NS}/jobs/${name}`,
  api: `GET /apis/apps/v1${NS}/deployments/task-scheduler-api`,
  worker: `GET /apis/apps/v1${NS}/deployments/task-scheduler-worker`,
  hpa: `GET /apis/autoscaling/v2${NS}/horizontalpodautoscalers/task-scheduler-worker`,
  scaledObject: `GET /apis/keda.sh/v1alpha1${NS}/scaledobjects/task-scheduler-worker`,
};

interface Seen {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

async function fakeApi(routes: Routes): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    seen.push({ method: req.method!, path: req.url!, headers: req.headers });
    req.resume();
    const replies = routes[route];
    const reply = replies ? (replies.length > 1 ? replies.shift()! : replies[0]!) : { status: 404, body: fixture('not-found') };
    res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-verify-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the tool with a kubeconfig whose only cluster is the fake server. */
function runVerify(server: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const kubeconfig = path.join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]
users: [{name: tester, user: {token: fake-token}}]
contexts: [{name: fake, context: {cluster: fake, user: tester}}]
current-context: fake
`,
  );
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cdk8s/verify/main.ts', '--url', server, '--interval', '50', ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

const task = (status: string, extra: Record<string, unknown> = {}) => ({ id: '0b7e6a1c-1111-4222-8333-944445555666', type: 'noop', status, attempts: status === 'queued' ? 0 : 1, last_error: null, ...extra });

test('dev with KEDA: waits for the Job and the rollout, sees the metric, and a task succeeds', async () => {
  const api = await fakeApi({
    [paths.job('task-scheduler-migrate-dev')]: [{ status: 404, body: fixture('not-found') }, ok('job-running'), ok('job-succeeded')],
    [paths.api]: [ok('deployment-api')],
    [paths.worker]: [ok('deployment-worker-rolling'), ok('deployment-worker')],
    [paths.scaledObject]: [ok('scaledobject')],
    [paths.hpa]: [ok('hpa-keda')],
    'POST /tasks': [{ status: 201, body: task('queued') }],
    [`GET /tasks/${task('queued').id}`]: [{ status: 200, body: task('running') }, { status: 200, body: task('succeeded') }],
  });
  try {
    const { code, output } = await runVerify(api.url, ['--timeout', '20']);
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('verify: all checks passed') });
    expect(output).toContain('… migrator Job task-scheduler-migrate-dev: not created yet');
    expect(output).toContain('✔ migrator Job task-scheduler-migrate-dev: succeeded');
    expect(output).toContain('… rollout of Deployment task-scheduler-worker: 1 old replicas pending termination');
    expect(output).toContain('✔ rollout of Deployment task-scheduler-worker: 2 of 2 replicas available');
    expect(output).toContain(
      '✔ KEDA ScaledObject task-scheduler-worker reads queue depth and oldest wait: queue-depth = 0 per replica, oldest-wait = 0, leases-and-retries = 500m per replica; 2 → 2 replicas',
    );
    expect(output).toContain(`✔ task through the ingress: task ${task('queued').id} succeeded after 1 attempt(s)`);
    // client-node used the kubeconfig's credentials.
    expect(api.seen.filter((s) => s.path.startsWith('/apis/')).every((s) => s.headers.authorization === 'Bearer fake-token')).toBe(true);
    const post = api.seen.find((s) => s.method === 'POST')!;
    expect(post.headers['content-type']).toBe('application/json');
    // The task requests carry the dev chart's bootstrap admin key.
    for (const s of api.seen.filter((x) => x.path.startsWith('/tasks'))) expect(s.headers.authorization).toBe(`Bearer ${ENVIRONMENTS.dev.credentials.create!.bootstrapAdminKey}`);
  } finally {
    await api.close();
  }
});

test('a failed migrator Job fails the run at once and no task is submitted', async () => {
  const api = await fakeApi({
    [paths.job('task-scheduler-migrate-dev')]: [ok('job-failed')],
    [paths.api]: [ok('deployment-api')],
    [paths.worker]: [ok('deployment-worker')],
    [paths.scaledObject]: [ok('scaledobject')],
    [paths.hpa]: [ok('hpa-keda')],
  });
  try {
    const { code, output } = await runVerify(api.url, ['--timeout', '20']);
    expect(code).toBe(1);
    expect(output).toContain('✘ migrator Job task-scheduler-migrate-dev: failed: BackoffLimitExceeded Job has reached the specified backoff limit');
    expect(output).toContain('– task submission skipped');
    expect(output).toContain('verify: FAILED');
    expect(api.seen.some((s) => s.method === 'POST')).toBe(false);
  } finally {
    await api.close();
  }
});

test('prod with the HPA: a metric the adapter does not serve times out with the reason', async () => {
  const api = await fakeApi({
    [paths.job('task-scheduler-migrate-0-1-0')]: [ok('job-succeeded')],
    [paths.api]: [ok('deployment-api')],
    [paths.worker]: [ok('deployment-worker')],
    [paths.hpa]: [ok('hpa-no-metric')],
  });
  try {
    const { code, output } = await runVerify(api.url, ['--env', 'prod', '--autoscaler', 'hpa', '--timeout', '3']);
    expect(code).toBe(1);
    expect(output).toContain('✘ HPA task-scheduler-worker reads queue depth and oldest wait: timed out; last seen: ScalingActive=False: FailedGetExternalMetric');
    expect(api.seen.some((s) => s.path.includes('scaledobjects'))).toBe(false);
  } finally {
    await api.close();
  }
});

test('dev scaled to zero: the idle autoscaler passes, and the task waits until KEDA starts a worker', async () => {
  const zero = { ...fixture('scaledobject'), spec: { ...fixture('scaledobject').spec, minReplicaCount: 0 } };
  const queued = { status: 200, body: task('queued') };
  const api = await fakeApi({
    [paths.job('task-scheduler-migrate-dev')]: [ok('job-succeeded')],
    [paths.api]: [ok('deployment-api')],
    [paths.worker]: [ok('deployment-worker-zero')],
    [paths.scaledObject]: [{ status: 200, body: zero }],
    [paths.hpa]: [ok('hpa-keda-idle')],
    'POST /tasks': [{ status: 201, body: task('queued') }],
    [`GET /tasks/${task('queued').id}`]: [queued, queued, { status: 200, body: task('succeeded') }],
  });
  try {
    const { code, output } = await runVerify(api.url, ['--timeout', '20']);
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('verify: all checks passed') });
    expect(output).toContain('✔ rollout of Deployment task-scheduler-worker: 0 of 0 replicas available');
    expect(output).toContain('✔ KEDA ScaledObject task-scheduler-worker reads queue depth and oldest wait: idle at zero replicas (Active=False); KEDA starts a worker when a task waits');
    expect(output).toContain(`… task through the ingress: task ${task('queued').id} is queued`);
  } finally {
    await api.close();
  }
});

test('a task that ends dead fails the run', async () => {
  const api = await fakeApi({
    [paths.job('task-scheduler-migrate-0-1-0')]: [ok('job-succeeded')],
    [paths.api]: [ok('deployment-api')],
    [paths.worker]: [ok('deployment-worker')],
    [paths.scaledObject]: [ok('scaledobject')],
    [paths.hpa]: [ok('hpa-keda')],
    'POST /tasks': [{ status: 503, body: { title: 'Service Unavailable' } }, { status: 201, body: task('queued') }],
    [`GET /tasks/${task('queued').id}`]: [{ status: 200, body: task('dead', { last_error: 'unknown task type "noop"' }) }],
  });
  try {
    const { code, output } = await runVerify(api.url, ['--env', 'prod', '--timeout', '20', '--api-key', 'tsk_0123456789abcdef_given-on-the-command-line']);
    expect(code).toBe(1);
    expect(output).toContain('… POST');
    expect(output).toContain('answered 503');
    expect(output).toContain('✘ task through the ingress: task 0b7e6a1c-1111-4222-8333-944445555666 is dead: unknown task type "noop"');
    expect(api.seen.find((s) => s.method === 'POST')!.headers).toMatchObject({ host: 'tasks.example.com', authorization: 'Bearer tsk_0123456789abcdef_given-on-the-command-line' });
  } finally {
    await api.close();
  }
});

describe('status readers', () => {
  test('jobs: missing, running, succeeded, failed', () => {
    expect(jobState(undefined).state).toBe('waiting');
    expect(jobState(fixture('job-running'))).toEqual({ state: 'waiting', detail: 'active 1, failed attempts 0' });
    expect(jobState(fixture('job-succeeded')).state).toBe('done');
    expect(jobState(fixture('job-failed')).state).toBe('failed');
  });

  test('rollouts follow kubectl rollout status', () => {
    expect(rolloutState(fixture('deployment-worker-rolling')).detail).toBe('1 old replicas pending termination');
    const unobserved = { ...fixture('deployment-api'), metadata: { name: 'x', generation: 3 } };
    expect(rolloutState(unobserved).detail).toBe('spec change not observed yet');
    const stuck = fixture('deployment-api');
    stuck.status.conditions[1] = { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' };
    expect(rolloutState(stuck).state).toBe('failed');
  });

  test('the autoscaler needs a current value of every metric: queue depth, oldest wait (and KEDA\'s leases-and-retries)', () => {
    expect(autoscalerState('keda', fixture('hpa-keda'), fixture('scaledobject')).state).toBe('done');
    expect(autoscalerState('keda', fixture('hpa-keda'), undefined).detail).toBe('ScaledObject not created yet');
    const oneMissing = fixture('hpa-keda');
    oneMissing.status.currentMetrics.splice(1, 1);
    expect(autoscalerState('keda', oneMissing, fixture('scaledobject')).detail).toBe('no current value for oldest-wait yet');
    const older = fixture('scaledobject');
    older.spec.triggers = older.spec.triggers.slice(0, 1);
    expect(autoscalerState('keda', fixture('hpa-keda'), older).detail).toBe('ScaledObject triggers are [queue-depth], not [queue-depth, oldest-wait, leases-and-retries]');

    expect(autoscalerState('hpa', fixture('hpa-no-metric'), undefined).detail).toMatch(/^ScalingActive=False: FailedGetExternalMetric/);
    const served = fixture('hpa-no-metric');
    served.status.currentMetrics = [{ type: 'External', external: { metric: { name: 'task_scheduler_queue_depth' }, current: { averageValue: '12' } } }];
    served.status.conditions[1].status = 'True';
    expect(autoscalerState('hpa', served, undefined).detail).toBe('no current value for task_scheduler_queue_oldest_wait yet');
    served.status.currentMetrics.push({ type: 'External', external: { metric: { name: 'task_scheduler_queue_oldest_wait' }, current: { value: '45' } } });
    expect(autoscalerState('hpa', served, undefined).detail).toBe('task_scheduler_queue_depth = 12 per replica, task_scheduler_queue_oldest_wait = 45; 2 → 2 replicas');
  });

  test('an HPA off at zero replicas passes only when the ScaledObject allows zero', () => {
    const zero = fixture('scaledobject');
    zero.spec.minReplicaCount = 0;
    expect(autoscalerState('keda', fixture('hpa-keda-idle'), zero)).toEqual({ state: 'done', detail: 'idle at zero replicas (Active=False); KEDA starts a worker when a task waits' });
    // With a floor of 1, zero replicas means something is wrong: wait, and say why.
    expect(autoscalerState('keda', fixture('hpa-keda-idle'), fixture('scaledobject')).detail).toMatch(/^ScalingActive=False: ScalingDisabled/);
    expect(autoscalerState('hpa', fixture('hpa-keda-idle'), undefined).state).toBe('waiting');
  });
});
