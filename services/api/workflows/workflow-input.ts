/**
 * Validation of POST /workflows: every problem is reported with the field it concerns
 * (`tasks[3].priority`, `tasks[3].depends_on`). A step's task fields are checked by POST /tasks's
 * own validator, so a workflow holds no task POST /tasks would refuse; the graph by
 * core/workflows/graph.ts. The names, bounds and enums come from schemas/workflows.ts.
 */
import { createHash } from 'node:crypto';
import { checkGraph, GraphStep } from '../../core/workflows/graph';
import { FailurePolicy, StepSpec, WorkflowIdempotency, WorkflowSpec } from '../../core/workflows/workflow';
import { badRequest, FieldError, ProblemError } from '../problem';
import { IdempotencyKeySchema } from '../schemas/task-input';
import { WorkflowInputSchema, WorkflowStepInputSchema } from '../schemas/workflows';
import { canonicalJson, prefixFields, validateTaskInput } from '../validation';

const FIELDS = WorkflowInputSchema.properties;
const KNOWN = new Set(Object.keys(FIELDS));
const STEP_KNOWN = new Set(Object.keys(WorkflowStepInputSchema.properties));
const NAME = new RegExp(FIELDS.name.pattern!);
const KEY = new RegExp(WorkflowStepInputSchema.properties.key.pattern!);
const POLICIES: readonly string[] = FIELDS.on_failure.enum;
const MIN_STEPS = FIELDS.tasks.minItems!;
const MAX_STEPS = FIELDS.tasks.maxItems!;
const MAX_DEPS = WorkflowStepInputSchema.properties.depends_on.maxItems!;
const IDEMPOTENCY_KEY = new RegExp(IdempotencyKeySchema.pattern!);
/** Problems listed at most; a body with more says how many it had. */
const MAX_PROBLEMS = 20;

export interface WorkflowRequest {
  spec: WorkflowSpec;
  /**
   * The Idempotency-Key header and the sha256 of the request with its defaults filled in; with
   * `hashWith` when a step left max_retries out (see WorkflowIdempotency).
   */
  idem: WorkflowIdempotency | null;
}

function refuse(errors: FieldError[]): never {
  const shown = errors.length > MAX_PROBLEMS ? [...errors.slice(0, MAX_PROBLEMS - 1), { field: '(body)', message: `and ${errors.length - MAX_PROBLEMS + 1} more problems` }] : errors;
  throw badRequest(shown.map((e) => `${e.field} ${e.message}`).join('; '), shown);
}

/** POST /workflows's body and Idempotency-Key header, defaults filled in. */
export function validateWorkflowInput(body: unknown, headerKey: string | undefined, defaultMaxRetries: number): WorkflowRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the request body must be a JSON object', [{ field: '(body)', message: 'must be a JSON object' }]);
  }
  const b = body as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) errors.push({ field: k, message: 'is not a known field' });
  if (b.name === undefined) errors.push({ field: 'name', message: 'is required' });
  else if (typeof b.name !== 'string' || !NAME.test(b.name)) errors.push({ field: 'name', message: 'must be 1-200 letters, digits, . _ : - starting with a letter or digit' });
  if (b.on_failure !== undefined && !(typeof b.on_failure === 'string' && POLICIES.includes(b.on_failure))) errors.push({ field: 'on_failure', message: `must be one of ${POLICIES.join(', ')}` });
  if (headerKey !== undefined && !IDEMPOTENCY_KEY.test(headerKey)) errors.push({ field: 'Idempotency-Key', message: 'must be 1-255 printable ASCII characters' });

  let steps: StepSpec[] = [];
  if (!Array.isArray(b.tasks)) errors.push({ field: 'tasks', message: 'must be an array of steps' });
  else if (b.tasks.length < MIN_STEPS || b.tasks.length > MAX_STEPS) errors.push({ field: 'tasks', message: `must hold ${MIN_STEPS} to ${MAX_STEPS} steps, got ${b.tasks.length}` });
  else steps = checkSteps(b.tasks, errors, defaultMaxRetries);
  if (errors.length) refuse(errors);

  const spec: WorkflowSpec = { name: b.name as string, on_failure: (b.on_failure as FailurePolicy | undefined) ?? (FIELDS.on_failure.default as FailurePolicy), steps };
  // Defaults are filled in first, so leaving one out and sending it are the same request.
  const hashOf = (x: WorkflowSpec) => createHash('sha256').update(canonicalJson(x)).digest('hex');
  if (headerKey === undefined) return { spec, idem: null };
  // Steps that left max_retries out took DEFAULT_MAX_RETRIES, which may have changed since the key's
  // first use (or differ on another replica): such a request also matches with the stored steps' own.
  const omitted = new Set((b.tasks as Record<string, unknown>[]).filter((t) => t.max_retries === undefined).map((t) => t.key as string));
  const hashWith =
    omitted.size === 0
      ? undefined
      : (maxRetriesByKey: Map<string, number>) => hashOf({ ...spec, steps: spec.steps.map((st) => (omitted.has(st.key) && maxRetriesByKey.has(st.key) ? { ...st, max_retries: maxRetriesByKey.get(st.key)! } : st)) });
  return { spec, idem: { key: headerKey, hash: hashOf(spec), hashWith } };
}

/** Every step checked; the graph only once every key and dependency list is well formed. */
function checkSteps(items: unknown[], errors: FieldError[], defaultMaxRetries: number): StepSpec[] {
  const steps: StepSpec[] = [];
  const graph: GraphStep[] = [];
  let shaped = true;
  items.forEach((item, i) => {
    const at = `tasks[${i}]`;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      errors.push({ field: at, message: 'must be an object: {"key", "type", "depends_on", …}' });
      shaped = false;
      return;
    }
    const { key, depends_on: deps, ...task } = item as Record<string, unknown>;
    const found: FieldError[] = [];
    for (const k of Object.keys(task)) if (!STEP_KNOWN.has(k)) found.push({ field: `${at}.${k}`, message: 'is not a known field' });
    if (key === undefined) found.push({ field: `${at}.key`, message: 'is required' });
    else if (typeof key !== 'string' || !KEY.test(key)) found.push({ field: `${at}.key`, message: 'must be 1-128 letters, digits, . _ : - starting with a letter or digit' });
    const dependsOn = checkDependsOn(deps, `${at}.depends_on`, found);
    if (found.length) shaped = false;
    else graph.push({ key: key as string, depends_on: dependsOn! });
    // Fields a step may not have were named above; POST /tasks's validator checks the rest.
    const known = Object.fromEntries(Object.entries(task).filter(([k]) => STEP_KNOWN.has(k)));
    try {
      const t = validateTaskInput(known, undefined, defaultMaxRetries);
      if (found.length === 0) steps.push({ key: key as string, type: t.type, payload: t.payload, priority: t.priority, max_retries: t.max_retries, retry: t.retry, timeout_ms: t.timeout_ms, depends_on: dependsOn! });
    } catch (err) {
      if (!(err instanceof ProblemError)) throw err;
      found.push(...prefixFields(err, at).errors);
    }
    errors.push(...found);
  });
  if (shaped) errors.push(...checkGraph(graph));
  return steps;
}

function checkDependsOn(v: unknown, field: string, errors: FieldError[]): string[] | null {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_DEPS) {
    errors.push({ field, message: `must be an array of at most ${MAX_DEPS} step keys` });
    return null;
  }
  let ok = true;
  v.forEach((d, i) => {
    if (typeof d === 'string' && KEY.test(d)) return;
    errors.push({ field: `${field}[${i}]`, message: 'must be a step key: 1-128 letters, digits, . _ : - starting with a letter or digit' });
    ok = false;
  });
  return ok ? (v as string[]) : null;
}
