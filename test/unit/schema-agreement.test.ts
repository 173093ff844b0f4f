/**
 * The hand-written validators (kept for speed on the hot path) and the schemas the OpenAPI document
 * shows must agree: random valid and invalid inputs get the same verdict, and the same fields named,
 * from ajv on the schema and from the validator. POST /tasks's body, the bulk body, the task filter,
 * the schedule bodies, the workflow body, and the filter's times against the standard `date-time` format.
 */
import Ajv2020, { ErrorObject } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats';
import fc from 'fast-check';
import { parseBulkBody } from '../../services/api/operator/bulk-routes';
import { ProblemError } from '../../services/api/problem';
import { bulkBodySchema } from '../../services/api/schemas/bulk';
import { validateScheduleInput, validateSchedulePatch } from '../../services/api/schedules/schedule-input';
import { ScheduleInputSchema, SchedulePatchSchema } from '../../services/api/schemas/schedules';
import { WorkflowInputSchema } from '../../services/api/schemas/workflows';
import { validateWorkflowInput } from '../../services/api/workflows/workflow-input';
import { TaskInputSchema } from '../../services/api/schemas/task-input';
import { validateTaskInput } from '../../services/api/validation';
import { PRIORITIES, STATUSES } from '../../services/core/tasks/priority';
import { parseTime, TimeSchema } from '../../services/core/tasks/task-fields';
import { encodeCursor } from '../../services/core/tasks/task-cursor';
import { filterSchema, parseFilter } from '../../services/core/tasks/task-filter';
import { expectEqual } from '../support/expect-equal';

// A JS Date cannot hold a leap second, so the API refuses 23:59:60, and Postgres no year 0 or past
// 9999 (TimeSchema says both); otherwise the standard date-time format decides.
const standardDateTime = (fullFormats['date-time'] as { validate: (s: string) => boolean }).validate;
const LEAP = /:60(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;
const inYears = (s: string) => {
  const ms = Date.parse(s.replace(' ', 'T'));
  return ms >= Date.parse('0001-01-01T00:00:00Z') && ms <= Date.parse('9999-12-31T23:59:59.999Z');
};
const apiDateTime = (s: string) => standardDateTime(s) && !LEAP.test(s) && inYears(s);
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addFormat('date-time', apiDateTime);

const RUNS = { numRuns: 3000, seed: Number(process.env.FC_SEED ?? 17) };

/** The fields ajv's errors concern, named as the API names them (`(body)`, `type`, `filter.status`). */
function ajvFields(errors: ErrorObject[] | null | undefined, depth = 1): string[] {
  const fields = new Set<string>();
  for (const e of errors ?? []) {
    const parts = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (e.keyword === 'required') parts.push(e.params.missingProperty);
    if (e.keyword === 'additionalProperties') parts.push(e.params.additionalProperty);
    // A problem is named after the body's field, or the filter's (`filter.status`), not what is inside.
    const named = parts.slice(0, parts[0] === 'filter' || parts[0] === 'retry' ? depth + 1 : depth);
    fields.add(named.length ? named.join('.') : '(body)');
  }
  return [...fields].sort();
}

function fastFields(run: () => unknown): string[] {
  try {
    run();
    return [];
  } catch (err) {
    if (!(err instanceof ProblemError)) throw err;
    return [...new Set(err.errors.map((e) => e.field))].sort();
  }
}

/** `valid` most of the time, else something else (a wrong type, a near miss, anything). */
const mostly = <T>(valid: fc.Arbitrary<T>, ...others: fc.Arbitrary<unknown>[]) =>
  fc.oneof({ arbitrary: valid, weight: 8 }, ...others.map((a) => ({ arbitrary: a, weight: 1 })), { arbitrary: fc.anything(), weight: 1 });
const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null));
/** Mostly absent (dropped by `json`), sometimes anything: an unknown field. */
const sometimes = (a: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 9 }, { arbitrary: a, weight: 1 });
const blank = fc.constantFrom('', ' ', '\t', '\u00a0', '\ufeff');
/** One or more of `values` as the filter takes them: comma-separated with blanks, or a list of those. */
const enumList = (values: readonly string[]) => {
  const one = fc.tuple(blank, fc.constantFrom(...values), blank).map((p) => p.join(''));
  const joined = fc.array(one, { minLength: 1, maxLength: 3 }).map((xs) => xs.join(','));
  return fc.oneof(joined, fc.array(joined, { minLength: 1, maxLength: 3 }));
};
const nearEnum = (values: readonly string[]) =>
  fc.oneof(fc.constantFrom('', ',', ' , ', 'Queued', 'urgent', `${values[0]},`, `${values[0]},,${values[1]}`), fc.constant([]), fc.array(fc.oneof(fc.string(), fc.integer())));
const cursor = fc.tuple(fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2999-12-31T00:00:00Z'), noInvalidDate: true }), fc.uuid()).map(([d, id]) =>
  encodeCursor({ createdAt: `${d.toISOString().replace('T', ' ').replace('Z', '')}+00`, id }),
);
const taskType = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/);
const nearType = fc.oneof(fc.constantFrom('', 'has space', 'é', 'a'.repeat(129)), fc.string());
const time = fc.oneof(
  fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.stringMatching(new RegExp(TimeSchema.pattern!)),
  fc.constantFrom(
    '2026-02-29T00:00:00Z', '2024-02-29T00:00:00Z', '2026-12-05T10:00:00', '2026-12-05T24:00:00Z', '2016-12-31T23:59:60Z', '2026-12-05 10:00:00+01:00', '2026-12-05T10:00:00+0100',
    '0000-12-31T23:59:59Z', '0001-01-01T00:00:00Z', '0001-01-01T00:30:00+01:00', '9999-12-31T23:59:59Z', '9999-12-31T23:59:59-00:01', '9999-12-31T22:00:00-01:00',
  ),
);

describe('POST /tasks: validateTaskInput and TaskInputSchema', () => {
  const check = ajv.compile(TaskInputSchema);
  const body = fc.record(
    {
      type: mostly(taskType, nearType),
      priority: mostly(fc.constantFrom(...PRIORITIES), fc.constantFrom('urgent', 'DEFAULT', '')),
      payload: fc.oneof(fc.jsonValue(), fc.constant(null)),
      max_retries: mostly(fc.integer({ min: 0, max: 100 }), fc.integer({ min: -5, max: 110 }), fc.double(), fc.constant('3')),
      idempotency_key: mostly(fc.stringMatching(/^[\x21-\x7e]{1,255}$/), fc.constantFrom('', 'has space', 'é', 'k'.repeat(256)), fc.string()),
      retry: sometimes(
        mostly(
          fc.record(
            {
              backoff: mostly(fc.constantFrom('exponential', 'linear', 'fixed'), fc.constantFrom('Linear', '')),
              base_ms: mostly(fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: -5, max: 0 }), fc.constant(86_400_001), fc.double()),
              max_ms: mostly(fc.integer({ min: 1, max: 604_800_000 }), fc.constant(0), fc.constant(604_800_001)),
              jitter: mostly(fc.constantFrom('full', 'equal', 'none'), fc.constant('half')),
              other: sometimes(fc.anything()),
            },
            { requiredKeys: [] },
          ),
          fc.constant([]),
          fc.constant('fixed'),
        ),
      ),
      timeout_ms: sometimes(mostly(fc.integer({ min: 1, max: 86_400_000 }), fc.constant(0), fc.constant(86_400_001), fc.constant('5'))),
      extra: sometimes(fc.anything()),
    },
    { requiredKeys: ['type'] },
  );
  const bodies = fc.oneof({ arbitrary: body, weight: 9 }, { arbitrary: fc.anything(), weight: 1 });

  it('agree on random bodies, naming the same fields', () => {
    let valid = 0;
    fc.assert(
      fc.property(bodies.map(json), (b) => {
        const ok = check(b);
        if (ok) valid++;
        expectEqual(fastFields(() => validateTaskInput(b, undefined, 3)), ok ? [] : ajvFields(check.errors));
      }),
      RUNS,
    );
    // Both sides of the verdict were tried in earnest.
    expect(valid).toBeGreaterThan(RUNS.numRuns / 10);
    expect(valid).toBeLessThan(RUNS.numRuns * 0.9);
  });
});

describe('the task filter: parseFilter and filterSchema', () => {
  const check = ajv.compile(filterSchema());
  const filter = fc.record(
    {
      status: mostly(enumList(STATUSES), nearEnum(STATUSES)),
      type: mostly(taskType, nearType),
      priority: mostly(enumList(PRIORITIES), nearEnum(PRIORITIES)),
      created_after: mostly(time, fc.string()),
      created_before: mostly(time, fc.string()),
    },
    { requiredKeys: [] },
  );

  it('agree on random filters, naming the same fields', () => {
    let valid = 0;
    fc.assert(
      fc.property(filter.map(json) as fc.Arbitrary<Record<string, unknown>>, (f) => {
        const ok = check(f);
        if (ok) valid++;
        expectEqual(parseFilter(f).problems.map((p) => p.field).sort(), ok ? [] : ajvFields(check.errors));
      }),
      RUNS,
    );
    expect(valid).toBeGreaterThan(RUNS.numRuns / 20);
  });

  it("parseTime agrees with the standard date-time format (leap seconds aside) and the schema's pattern", () => {
    const pattern = new RegExp(TimeSchema.pattern!);
    fc.assert(
      fc.property(fc.oneof(time, fc.string()), (s) => {
        expectEqual(parseTime(s) !== null, pattern.test(s) && apiDateTime(s));
      }),
      RUNS,
    );
    expect(parseTime('2026-12-05 10:00:00+01:00')?.toISOString()).toBe('2026-12-05T09:00:00.000Z');
    // Within the years 1 to 9999 once in UTC, as Postgres stores them.
    expect(parseTime('0001-01-01T00:00:00Z')?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(parseTime('0001-01-01T00:30:00+01:00')).toBeNull();
    expect(parseTime('9999-12-31T23:59:59-00:01')).toBeNull();
    expect(parseTime('0000-06-01T00:00:00Z')).toBeNull();
  });
});

describe('POST /tasks/cancel and /tasks/retry: parseBulkBody and bulkBodySchema', () => {
  const MAX = 50;
  for (const action of ['cancel', 'retry'] as const) {
    it(`${action}: agree on random bodies, naming the same fields`, () => {
      const check = ajv.compile(bulkBodySchema(action, MAX));
      const filter = fc.record(
        {
          status: mostly(enumList(STATUSES), nearEnum(STATUSES)),
          type: mostly(taskType, nearType),
          created_after: mostly(time),
          other: sometimes(fc.constant(1)),
        },
        { requiredKeys: [] },
      );
      const body = fc.record(
        {
          filter: mostly(filter, fc.constant(null), fc.array(fc.anything())),
          limit: mostly(fc.integer({ min: 1, max: MAX }), fc.integer({ min: -2, max: MAX + 2 }), fc.double()),
          dry_run: mostly(fc.boolean(), fc.constant('true')),
          // A cursor the service gave, or not a string (the schema cannot tell a forged string: the
          // integration tests show that 400).
          cursor: sometimes(fc.oneof(cursor, cursor, fc.integer(), fc.constant(null), fc.array(cursor, { maxLength: 1 }))),
          extra: sometimes(fc.anything()),
        },
        { requiredKeys: [] },
      );
      let valid = 0;
      fc.assert(
        fc.property(fc.oneof({ arbitrary: body, weight: 9 }, { arbitrary: fc.anything(), weight: 1 }).map(json), (b) => {
          const ok = check(b);
          if (ok) valid++;
          expectEqual(fastFields(() => parseBulkBody(action, b, MAX)), ok ? [] : ajvFields(check.errors));
        }),
        RUNS,
      );
      expect(valid).toBeGreaterThan(RUNS.numRuns / 20);
    });
  }
});

describe('POST /schedules and PATCH /schedules/{name}: the schedule validators and their schemas', () => {
  /** A schedule's task is named down to its field (`task.type`, `task.retry.base_ms`), as POST /tasks names them. */
  function scheduleFields(errors: ErrorObject[] | null | undefined): string[] {
    const fields = new Set<string>();
    for (const e of errors ?? []) {
      const parts = e.instancePath.split('/').slice(1);
      if (e.keyword === 'required') parts.push(e.params.missingProperty);
      if (e.keyword === 'additionalProperties') parts.push(e.params.additionalProperty);
      const depth = parts[0] !== 'task' ? 1 : parts[1] === 'retry' ? 3 : 2;
      const named = parts.slice(0, depth);
      fields.add(named.length ? named.join('.') : '(body)');
    }
    return [...fields].sort();
  }
  const task = fc.record(
    {
      type: mostly(taskType, nearType),
      priority: sometimes(mostly(fc.constantFrom(...PRIORITIES), fc.constant('urgent'))),
      payload: sometimes(fc.oneof(fc.jsonValue(), fc.constant(null))),
      max_retries: sometimes(mostly(fc.integer({ min: 0, max: 100 }), fc.integer({ min: -5, max: 110 }))),
      retry: sometimes(mostly(fc.record({ backoff: mostly(fc.constantFrom('fixed', 'linear')), base_ms: mostly(fc.integer({ min: 1, max: 1000 }), fc.constant(0)) }, { requiredKeys: [] }), fc.constant([]))),
      timeout_ms: sometimes(mostly(fc.integer({ min: 1, max: 86_400_000 }), fc.constant(0))),
      idempotency_key: sometimes(fc.constant('k')),
      delay_ms: sometimes(fc.constant(1000)),
      run_at: sometimes(fc.constant('2030-01-01T00:00:00Z')),
    },
    { requiredKeys: ['type'] },
  );
  const fieldsArb = {
    name: mostly(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/), fc.constantFrom('', '-x', 'a b', 'é', 'a'.repeat(129)), fc.integer()),
    cron: mostly(fc.constantFrom('* * * * *', '0 3 * * *', '@daily'), fc.constantFrom('', 'x'.repeat(257)), fc.integer()),
    timezone: sometimes(mostly(fc.constantFrom('UTC', 'Europe/Berlin'), fc.constantFrom('', 'x'.repeat(65)), fc.constant(null))),
    task: mostly(task, fc.constant('noop'), fc.constant(null)),
    misfire: sometimes(mostly(fc.constantFrom('skip', 'run_once', 'catch_up'), fc.constant('later'))),
    catch_up_limit: sometimes(mostly(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: -1, max: 1002 }), fc.double())),
    overlap: sometimes(mostly(fc.constantFrom('allow', 'skip'), fc.constant('never'))),
    paused: sometimes(mostly(fc.boolean(), fc.constant('true'))),
    extra: sometimes(fc.anything()),
  };

  it('create: agree on random bodies, naming the same fields', () => {
    const check = ajv.compile(ScheduleInputSchema);
    const body = fc.record(fieldsArb, { requiredKeys: ['name', 'cron', 'task'] });
    let valid = 0;
    fc.assert(
      fc.property(fc.oneof({ arbitrary: body, weight: 9 }, { arbitrary: fc.anything(), weight: 1 }).map(json), (b) => {
        const ok = check(b);
        if (ok) valid++;
        expectEqual(fastFields(() => validateScheduleInput(b, 3)), ok ? [] : scheduleFields(check.errors));
      }),
      RUNS,
    );
    expect(valid).toBeGreaterThan(RUNS.numRuns / 20);
  });

  it('patch: agree on random bodies, naming the same fields', () => {
    const check = ajv.compile(SchedulePatchSchema);
    const { name: _name, ...patchFields } = fieldsArb;
    const body = fc.record({ ...patchFields, name: sometimes(fc.constant('renamed')) }, { requiredKeys: [] });
    let valid = 0;
    fc.assert(
      fc.property(fc.oneof({ arbitrary: body, weight: 9 }, { arbitrary: fc.anything(), weight: 1 }).map(json), (b) => {
        const ok = check(b);
        if (ok) valid++;
        expectEqual(fastFields(() => validateSchedulePatch(b, 3)), ok ? [] : scheduleFields(check.errors));
      }),
      RUNS,
    );
    expect(valid).toBeGreaterThan(RUNS.numRuns / 20);
  });
});

describe('POST /workflows: the workflow validator and its schema', () => {
  /** A step's problem is named down to its field (`tasks[0].retry.base_ms`, `tasks[1].depends_on[0]`). */
  function workflowFields(errors: ErrorObject[] | null | undefined): string[] {
    const fields = new Set<string>();
    for (const e of errors ?? []) {
      const parts = e.instancePath.split('/').slice(1);
      if (e.keyword === 'required') parts.push(e.params.missingProperty);
      if (e.keyword === 'additionalProperties') parts.push(e.params.additionalProperty);
      if (parts.length === 0) fields.add('(body)');
      else if (parts[0] !== 'tasks' || parts.length === 1) fields.add(parts[0]!);
      else {
        const [, i, field, sub] = parts;
        const inner = field === undefined ? '' : field === 'retry' && sub !== undefined ? `.retry.${sub}` : field === 'depends_on' && sub !== undefined ? `.depends_on[${sub}]` : `.${field}`;
        fields.add(`tasks[${i}]${inner}`);
      }
    }
    return [...fields].sort();
  }
  const stepFields = {
    type: mostly(taskType, nearType),
    priority: sometimes(mostly(fc.constantFrom(...PRIORITIES), fc.constant('urgent'))),
    payload: sometimes(fc.oneof(fc.jsonValue(), fc.constant(null))),
    max_retries: sometimes(mostly(fc.integer({ min: 0, max: 100 }), fc.integer({ min: -5, max: 110 }))),
    retry: sometimes(mostly(fc.record({ backoff: mostly(fc.constantFrom('fixed', 'linear')), base_ms: mostly(fc.integer({ min: 1, max: 1000 }), fc.constant(0)) }, { requiredKeys: [] }), fc.constant([]))),
    timeout_ms: sometimes(mostly(fc.integer({ min: 1, max: 86_400_000 }), fc.constant(0))),
    idempotency_key: sometimes(fc.constant('k')),
    run_at: sometimes(fc.constant('2030-01-01T00:00:00Z')),
  };
  // Keys unique by construction and dependencies on earlier steps only, each once: what is left to
  // disagree on is what JSON Schema can say (the graph is graph.ts's, tested on its own). Steps are
  // few, so a body stays under the 20 problems the validator lists.
  const steps = fc
    .array(fc.tuple(fc.record(stepFields, { requiredKeys: ['type'] }), mostly(fc.constant('ok'), fc.constant('bad-key'), fc.constant('no-key')), fc.array(fc.nat(), { maxLength: 3 }), sometimes(fc.constant('not-a-list'))), { minLength: 1, maxLength: 3 })
    .map((items) => {
      const keys = items.map(([, k], i) => (k === 'bad-key' ? `-${i}` : `s${i}`));
      return items.map(([fields, k, deps, notList], i) => {
        const earlier = [...new Set(deps.filter((d) => d < i))].map((d) => keys[d]!);
        return { ...fields, ...(k === 'no-key' ? {} : { key: keys[i] }), ...(notList ? { depends_on: notList } : earlier.length ? { depends_on: earlier } : {}) };
      });
    });
  const body = fc.record(
    {
      name: mostly(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/), fc.constantFrom('', '-x', 'a b', 'é', 'a'.repeat(201)), fc.integer()),
      on_failure: sometimes(mostly(fc.constantFrom('cancel_dependents', 'continue'), fc.constant('explode'))),
      tasks: mostly(steps, fc.constant([]), fc.constant('noop'), fc.array(fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.array(fc.integer())), { minLength: 1, maxLength: 2 })),
      extra: sometimes(fc.anything()),
    },
    { requiredKeys: ['name', 'tasks'] },
  );

  it('agree on random bodies, naming the same fields', () => {
    const check = ajv.compile(WorkflowInputSchema);
    let valid = 0;
    fc.assert(
      fc.property(fc.oneof({ arbitrary: body, weight: 9 }, { arbitrary: fc.anything(), weight: 1 }).map(json), (b) => {
        const ok = check(b);
        if (ok) valid++;
        const fast = fastFields(() => validateWorkflowInput(b, undefined, 3));
        const expected = ok ? [] : workflowFields(check.errors);
        // A body with more than 20 problems gets the first 19 and a count (`(body)`).
        if (fast.length >= 20) expectEqual(fast.filter((f) => f !== '(body)').every((f) => expected.includes(f)) && expected.length >= 19, true);
        else expectEqual(fast, expected);
      }),
      RUNS,
    );
    expect(valid).toBeGreaterThan(RUNS.numRuns / 20);
  });
});
