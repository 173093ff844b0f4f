/**
 * A workflow's cancel (recorded, then its steps past waiting cancelled in batches) against an
 * operator's retry of one of its dead steps. A recorded cancel wins: a retry arriving after it is
 * refused, wherever it lands among the cancel's statements; a retry that committed before the
 * cancel is cancelled by it. Each interleaving is lined up with a gate or a held lock, not sleeps.
 */
import { retryTasks } from '../../services/core/operator/retry-tasks';
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import type { StepSpec } from '../../services/core/workflows/workflow';
import { cancelWorkflow, createWorkflow, getWorkflow } from '../../services/core/workflows/workflow-store';
import { createStack, silentLog, Stack, startApi, waitFor } from '../support/stack';
import { statementGate } from '../support/statement-gate';

const TENANT = 'default';
let stack: Stack;

afterEach(async () => {
  await stack?.close();
});

function step(key: string, priority: StepSpec['priority'], depends_on: string[] = []): StepSpec {
  return { key, type: 'count', payload: { key }, priority, max_retries: 0, retry: null, timeout_ms: null, depends_on };
}

/** A running workflow (`continue`): a dead (in its dead letters, as a worker leaves it), b cancelled by a's death, c queued in Redis. */
async function workflowWithDeadStep(): Promise<{ id: string; a: string; b: string; c: string }> {
  stack = await createStack({ QUEUE_STRATEGY: 'strict' });
  const out = await createWorkflow({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, { name: 'race', on_failure: 'continue', steps: [step('a', 'critical'), step('b', 'high', ['a']), step('c', 'low')] }, null);
  if (out.kind !== 'created') throw new Error(out.kind);
  const [a, b, c] = out.steps.map((s) => s.task_id) as [string, string, string];
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect(lease!.message.id).toBe(a);
  await recordOutcomes(stack.pool, [{ id: a, token: lease!.token, attempt: lease!.attempt, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'boom', dead: true, delayMs: 0, step: true }]);
  await stack.queue.finish([{ id: a, token: lease!.token, priority: 'critical', outcome: 'dead', settleAttempts: 1 }]);
  return { id: out.workflow.id, a, b, c };
}

const deps = () => ({ pool: stack.pool, queue: stack.queue, log: silentLog });

/** The workflow ended cancelled, each step final, and nothing of it left for a worker to run. */
async function expectCancelledForGood(id: string): Promise<void> {
  const w = await getWorkflow(stack.pool, TENANT, id);
  expect(w!.workflow).toMatchObject({ status: 'cancelled', unfinished: 0 });
  expect(w!.workflow.cancel_requested_at).not.toBeNull();
  expect(w!.steps.map((s) => [s.key, s.status])).toEqual([
    ['a', expect.stringMatching(/^(dead|cancelled)$/)],
    ['b', 'cancelled'],
    ['c', 'cancelled'],
  ]);
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w2' })).toEqual([]);
}

// The cancel's second phase reads the steps past waiting (one batch), then cancels them.
const STEPS_PAST_WAITING = /^\s*SELECT id FROM tasks WHERE workflow_id = \$1 AND status IN \('queued'/;

describe.each([
  ['before the cancel reads the steps past waiting', 'before'],
  ['after the cancel read the steps past waiting, before it cancels them', 'after'],
] as const)('a retry landing once the cancel is recorded, %s', (_what, when) => {
  it('is refused (409), and the workflow ends cancelled with nothing left to run', async () => {
    const wf = await workflowWithDeadStep();
    const gate = statementGate(stack.pool, STEPS_PAST_WAITING, when);
    const cancel = cancelWorkflow({ pool: gate.pool, queue: stack.queue }, TENANT, wf.id);
    await gate.reached;
    expect(await retryTasks(deps(), TENANT, [wf.a])).toEqual([{ kind: 'workflow_cancelling', workflowId: wf.id }]);
    gate.open();
    expect(await cancel).toMatchObject({ kind: 'cancelled', cancelled: 1 });
    await expectCancelledForGood(wf.id);
  });
});

it('over HTTP: POST /tasks/{id}/retry of a step of a workflow whose cancel is under way answers 409, naming the workflow', async () => {
  const wf = await workflowWithDeadStep();
  const api = await startApi(stack);
  const gate = statementGate(stack.pool, STEPS_PAST_WAITING);
  try {
    const cancel = cancelWorkflow({ pool: gate.pool, queue: stack.queue }, TENANT, wf.id);
    await gate.reached;
    const res = await fetch(`${api.url}/tasks/${wf.a}/retry`, { method: 'POST' });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { detail: string }).detail).toContain(`workflow ${wf.id}, whose cancel is under way`);
    gate.open();
    await cancel;
  } finally {
    await api.server.stop();
  }
  await expectCancelledForGood(wf.id);
});

/** Transactions of this database waiting for an advisory lock (a workflow's). */
const waiters = async () =>
  (await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)).rows[0]!.n;

it('a retry that read the workflow before the cancel recorded itself, and takes the workflow’s lock after it, is refused', async () => {
  const wf = await workflowWithDeadStep();
  const holder = await stack.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT workflow_lock($1)', [wf.id]);
    // The cancel queues for the workflow's lock first, the retry (its step's row locked) behind it.
    const cancel = cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.id);
    await waitFor(async () => (await waiters()) === 1, 10_000, 'the cancel waiting for the lock');
    const retry = retryTasks(deps(), TENANT, [wf.a]);
    await waitFor(async () => (await waiters()) === 2, 10_000, 'the retry waiting for the lock');
    await holder.query('COMMIT');
    expect(await retry).toEqual([{ kind: 'workflow_cancelling', workflowId: wf.id }]);
    expect(await cancel).toMatchObject({ kind: 'cancelled', cancelled: 1 });
  } finally {
    holder.release();
  }
  await expectCancelledForGood(wf.id);
});

it('a retry that commits before the cancel takes the workflow’s lock is cancelled by it: the reopened steps too', async () => {
  const wf = await workflowWithDeadStep();
  const holder = await stack.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT workflow_lock($1)', [wf.id]);
    // The retry queues for the workflow's lock first, the cancel behind it.
    const retry = retryTasks(deps(), TENANT, [wf.a]);
    await waitFor(async () => (await waiters()) === 1, 10_000, 'the retry waiting for the lock');
    const cancel = cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.id);
    await waitFor(async () => (await waiters()) === 2, 10_000, 'the cancel waiting for the lock');
    await holder.query('COMMIT');
    expect(await retry).toEqual([{ kind: 'retried', from: 'dead' }]);
    expect(await cancel).toMatchObject({ kind: 'cancelled', cancelled: 3 });
  } finally {
    holder.release();
  }
  await expectCancelledForGood(wf.id);
});
