/**
 * POST /workflows's validator: defaults filled in, every problem named down to the step and field
 * (a step is held to POST /tasks's rules), the graph checked once the keys are well formed, and the
 * idempotency hash the same for the same request however it is written.
 */
import { ProblemError } from '../../services/api/problem';
import { validateWorkflowInput } from '../../services/api/workflows/workflow-input';
import { MAX_WORKFLOW_STEPS } from '../../services/core/workflows/workflow';

function fields(body: unknown, key?: string): string[] {
  try {
    validateWorkflowInput(body, key, 5);
    return [];
  } catch (err) {
    if (!(err instanceof ProblemError)) throw err;
    expect(err.status).toBe(400);
    return err.errors.map((e) => e.field);
  }
}

const wf = (tasks: unknown[], extra: Record<string, unknown> = {}) => ({ name: 'etl', tasks, ...extra });

it('fills in the defaults of the workflow and of each step', () => {
  const { spec, idem } = validateWorkflowInput(wf([{ key: 'a', type: 'noop' }, { key: 'b', type: 'echo', priority: 'high', payload: [1], max_retries: 0, retry: { backoff: 'fixed' }, timeout_ms: 50, depends_on: ['a'] }]), undefined, 5);
  expect(idem).toBeNull();
  expect(spec).toEqual({
    name: 'etl',
    on_failure: 'cancel_dependents',
    steps: [
      { key: 'a', type: 'noop', payload: {}, priority: 'default', max_retries: 5, retry: null, timeout_ms: null, depends_on: [] },
      { key: 'b', type: 'echo', payload: [1], priority: 'high', max_retries: 0, retry: { backoff: 'fixed' }, timeout_ms: 50, depends_on: ['a'] },
    ],
  });
});

it('hashes the request with its defaults, so leaving one out is the same request', () => {
  const a = validateWorkflowInput(wf([{ key: 'a', type: 'noop' }]), 'k1', 5).idem!;
  const b = validateWorkflowInput({ tasks: [{ priority: 'default', type: 'noop', key: 'a', depends_on: [] }], on_failure: 'cancel_dependents', name: 'etl' }, 'k1', 5).idem!;
  const c = validateWorkflowInput(wf([{ key: 'a', type: 'noop' }], { on_failure: 'continue' }), 'k1', 5).idem!;
  expect(a).toMatchObject({ key: 'k1', hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  expect(b.hash).toBe(a.hash);
  expect(c.hash).not.toBe(a.hash);
  expect(fields(wf([{ key: 'a', type: 'noop' }]), 'has space')).toEqual(['Idempotency-Key']);
});

it.each([
  [{ tasks: [{ key: 'a', type: 'noop' }] }, ['name']],
  [wf([{ key: 'a', type: 'noop' }], { name: 'has space' }), ['name']],
  [wf([{ key: 'a', type: 'noop' }], { on_failure: 'explode', colour: 1 }), ['colour', 'on_failure']],
  [wf([]), ['tasks']],
  [{ name: 'x', tasks: {} }, ['tasks']],
  [wf(['noop']), ['tasks[0]']],
  [wf([{ type: 'noop' }]), ['tasks[0].key']],
  [wf([{ key: '-a', type: 'noop' }]), ['tasks[0].key']],
  [wf([{ key: 'a', type: 'no op', priority: 'urgent' }]), ['tasks[0].priority', 'tasks[0].type']],
  [wf([{ key: 'a', type: 'noop', retry: { base_ms: 0 } }]), ['tasks[0].retry.base_ms']],
  [wf([{ key: 'a', type: 'noop', run_at: '2030-01-01T00:00:00Z', delay_ms: 5, idempotency_key: 'k' }]), ['tasks[0].delay_ms', 'tasks[0].idempotency_key', 'tasks[0].run_at']],
  [wf([{ key: 'a', type: 'noop', depends_on: 'b' }]), ['tasks[0].depends_on']],
  [wf([{ key: 'a', type: 'noop', depends_on: [5] }]), ['tasks[0].depends_on[0]']],
  [wf([{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['c'] }]), ['tasks[1].depends_on']],
  [wf([{ key: 'a', type: 'noop' }, { key: 'a', type: 'noop' }]), ['tasks[1].key']],
  [wf([{ key: 'a', type: 'noop', depends_on: ['b'] }, { key: 'b', type: 'noop', depends_on: ['a'] }]), ['tasks[0].depends_on']],
  // A step whose task fields are wrong still counts as a step for its dependents.
  [wf([{ key: 'a', type: 'no op' }, { key: 'b', type: 'noop', depends_on: ['a'] }]), ['tasks[0].type']],
])('refuses %j naming %j', (body, named) => {
  expect(fields(body).sort()).toEqual(named);
});

it('names the cycle in the detail', () => {
  try {
    validateWorkflowInput(wf([{ key: 'a', type: 'noop', depends_on: ['c'] }, { key: 'b', type: 'noop', depends_on: ['a'] }, { key: 'c', type: 'noop', depends_on: ['b'] }]), undefined, 5);
    throw new Error('accepted a cycle');
  } catch (err) {
    expect((err as ProblemError).message).toBe('tasks[0].depends_on forms a cycle: a -> c -> b -> a');
  }
});

it(`takes up to ${MAX_WORKFLOW_STEPS} steps, and lists at most 20 problems of a body with more`, () => {
  const chain = Array.from({ length: MAX_WORKFLOW_STEPS }, (_, i) => ({ key: `s${i}`, type: 'noop', ...(i ? { depends_on: [`s${i - 1}`] } : {}) }));
  expect(validateWorkflowInput(wf(chain), undefined, 5).spec.steps).toHaveLength(MAX_WORKFLOW_STEPS);
  expect(fields(wf([...chain, { key: 'one-more', type: 'noop' }]))).toEqual(['tasks']);
  const bad = fields(wf(chain.map((s) => ({ ...s, type: 'no op' }))));
  expect(bad).toHaveLength(20);
  expect(bad[19]).toBe('(body)');
});
