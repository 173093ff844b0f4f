/**
 * The workflow graph check: unique keys, known dependencies other than the step itself, no
 * repeated dependency, and no cycle (the steps of one named), in linear time on graphs of
 * MAX_WORKFLOW_STEPS steps, deep or wide.
 */
import { checkGraph, GraphStep } from '../../services/core/workflows/graph';
import { MAX_WORKFLOW_STEPS } from '../../services/core/workflows/workflow';

const step = (key: string, ...depends_on: string[]): GraphStep => ({ key, depends_on });

it('accepts a DAG: a diamond, lone steps, steps listed before their dependencies', () => {
  expect(checkGraph([step('a'), step('b', 'a'), step('c', 'a'), step('d', 'b', 'c'), step('lone')])).toEqual([]);
  expect(checkGraph([step('z', 'y'), step('y', 'x'), step('x')])).toEqual([]);
});

it('refuses a duplicate key, naming the step and the key', () => {
  expect(checkGraph([step('a'), step('b'), step('a')])).toEqual([{ field: 'tasks[2].key', message: 'duplicates the key "a" of tasks[0]' }]);
});

it('refuses an unknown dependency, naming the step and the key', () => {
  expect(checkGraph([step('a'), step('b', 'a', 'ghost')])).toEqual([{ field: 'tasks[1].depends_on', message: 'step "b" depends on "ghost", which is not a step of the workflow' }]);
});

it('refuses a step that depends on itself, and a dependency named twice', () => {
  expect(checkGraph([step('a', 'a')])).toEqual([{ field: 'tasks[0].depends_on', message: 'step "a" depends on itself' }]);
  expect(checkGraph([step('a'), step('b', 'a', 'a')])).toEqual([{ field: 'tasks[1].depends_on', message: 'names "a" twice' }]);
});

it('names the steps of a cycle, from the step where it closes', () => {
  expect(checkGraph([step('a', 'c'), step('b', 'a'), step('c', 'b')])).toEqual([{ field: 'tasks[0].depends_on', message: 'forms a cycle: a -> c -> b -> a' }]);
  // Steps downstream of the cycle are not part of it, nor are those upstream.
  const problems = checkGraph([step('root'), step('down', 'x'), step('x', 'y', 'root'), step('y', 'x')]);
  expect(problems).toHaveLength(1);
  expect(problems[0]!.message).toMatch(/^forms a cycle: (x -> y -> x|y -> x -> y)$/);
  expect(problems[0]!.message).not.toMatch(/down|root/);
});

it('reports at most ten problems', () => {
  const steps = Array.from({ length: 50 }, (_, i) => step(`s${i}`, 'missing'));
  expect(checkGraph(steps)).toHaveLength(10);
});

it(`checks a chain of ${MAX_WORKFLOW_STEPS} steps without recursion, and finds the cycle closing it`, () => {
  const chain = Array.from({ length: MAX_WORKFLOW_STEPS }, (_, i) => (i === 0 ? step('s0') : step(`s${i}`, `s${i - 1}`)));
  const t0 = Date.now();
  expect(checkGraph(chain)).toEqual([]);
  chain[0] = step('s0', `s${MAX_WORKFLOW_STEPS - 1}`);
  const [cycle] = checkGraph(chain);
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(cycle!.message.split(' -> ')).toHaveLength(MAX_WORKFLOW_STEPS + 1);
});

it('checks a fan-out and fan-in: 1 -> 1000 -> 1', () => {
  const middle = Array.from({ length: 1000 }, (_, i) => step(`m${i}`, 'start'));
  const steps = [step('start'), ...middle, step('end', ...middle.map((s) => s.key))];
  expect(checkGraph(steps)).toEqual([]);
  // The end step feeding back into the start closes a cycle through one of the middle steps.
  steps[0] = step('start', 'end');
  expect(checkGraph(steps)[0]!.message).toMatch(/^forms a cycle: start -> end -> m\d+ -> start$/);
});
