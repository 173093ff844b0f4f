/**
 * The dependency graph of a submitted workflow: keys unique, every dependency a known step other
 * than itself and named once, and no cycle. Pure and iterative (Kahn's algorithm; no recursion), so
 * a chain of MAX_WORKFLOW_STEPS steps costs linear time and a constant stack.
 */

export interface GraphStep {
  key: string;
  depends_on: readonly string[];
}

/** A problem with the field it concerns: `tasks[3].key`, `tasks[3].depends_on`. */
export interface GraphProblem {
  field: string;
  message: string;
}

/** Problems reported at most (the rest of a large broken graph adds nothing a caller can use). */
const MAX_PROBLEMS = 10;

/** The graph's problems, in step order; none when it is a DAG. */
export function checkGraph(steps: readonly GraphStep[]): GraphProblem[] {
  const problems: GraphProblem[] = [];
  const index = new Map<string, number>();
  steps.forEach((s, i) => {
    const first = index.get(s.key);
    if (first === undefined) index.set(s.key, i);
    else problems.push({ field: `tasks[${i}].key`, message: `duplicates the key ${JSON.stringify(s.key)} of tasks[${first}]` });
  });
  steps.forEach((s, i) => {
    const named = new Set<string>();
    for (const d of s.depends_on) {
      const field = `tasks[${i}].depends_on`;
      if (d === s.key) problems.push({ field, message: `step ${JSON.stringify(s.key)} depends on itself` });
      else if (named.has(d)) problems.push({ field, message: `names ${JSON.stringify(d)} twice` });
      else if (!index.has(d)) problems.push({ field, message: `step ${JSON.stringify(s.key)} depends on ${JSON.stringify(d)}, which is not a step of the workflow` });
      named.add(d);
    }
  });
  if (problems.length > 0) return problems.slice(0, MAX_PROBLEMS);
  const cycle = findCycle(steps, index);
  return cycle ? [cycle] : [];
}

/**
 * Kahn's algorithm: steps without unfinished dependencies are removed, in turn. What remains lies
 * on a cycle or downstream of one; every remaining step has a remaining dependency, so following
 * those from any of them must come back to a step already passed: that loop is the cycle named.
 */
function findCycle(steps: readonly GraphStep[], index: Map<string, number>): GraphProblem | null {
  const n = steps.length;
  const pending = new Int32Array(n);
  const children: number[][] = Array.from({ length: n }, () => []);
  steps.forEach((s, i) => {
    pending[i] = s.depends_on.length;
    for (const d of s.depends_on) children[index.get(d)!]!.push(i);
  });
  const ready: number[] = [];
  for (let i = 0; i < n; i++) if (pending[i] === 0) ready.push(i);
  let removed = 0;
  while (ready.length > 0) {
    const i = ready.pop()!;
    removed++;
    for (const c of children[i]!) if (--pending[c]! === 0) ready.push(c);
  }
  if (removed === n) return null;

  const start = pending.findIndex((p) => p > 0);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  let at = start;
  while (!seenAt.has(at)) {
    seenAt.set(at, path.length);
    path.push(at);
    at = steps[at]!.depends_on.map((d) => index.get(d)!).find((p) => pending[p]! > 0)!;
  }
  const loop = path.slice(seenAt.get(at)!);
  const keys = [...loop, loop[0]!].map((i) => steps[i]!.key);
  return { field: `tasks[${loop[0]}].depends_on`, message: `forms a cycle: ${keys.join(' -> ')}` };
}
