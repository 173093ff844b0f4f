/**
 * What POST /tasks and POST /tasks/batch accept, as JSON Schema. The OpenAPI document shows these,
 * and validation.ts enforces them (its patterns, bounds and enums are read from here). A new field
 * of a task request is added here first, then read in validation.ts; the property test
 * (test/unit/schema-agreement.test.ts) fails until both agree.
 */
import { Static, Type } from '@sinclair/typebox';
import { StringEnum } from '../../core/schema/json-schema';
import { BACKOFFS, JITTERS } from '../../core/tasks/backoff';
import { PrioritySchema, TaskTypeSchema } from '../../core/tasks/task-fields';

export const IdempotencyKeySchema = Type.String({
  pattern: '^[\\x21-\\x7e]{1,255}$',
  description: '1-255 printable ASCII characters. A repeated request with the same key returns the task it created (200); the same key with a different request is a 409.',
});

/** A task's own retry policy: every field optional, the rest from the handler's or the environment's. */
export const RetryPolicySchema = Type.Object(
  {
    backoff: Type.Optional(StringEnum(BACKOFFS, { description: 'exponential: base_ms·2^(n-1); linear: base_ms·n; fixed: base_ms (n: the failed attempt). Default exponential.' })),
    base_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'Default RETRY_BASE_MS.' })),
    max_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 604_800_000, description: 'The longest delay (at most 7 days). Default RETRY_MAX_MS.' })),
    jitter: Type.Optional(StringEnum(JITTERS, { description: 'full: a random delay up to the computed one; equal: half of it plus a random half; none. Default: up to RETRY_JITTER_MS added.' })),
  },
  { additionalProperties: false, description: 'How long a failed attempt waits before the next. Precedence: the task\'s own, then its handler\'s, then the environment\'s.' },
);

export const TaskInputSchema = Type.Object(
  {
    type: TaskTypeSchema,
    priority: Type.Optional({ ...PrioritySchema, default: 'default' }),
    // Null is refused (omit it for an empty object); what a payload may hold beyond that (no NUL,
    // no lone surrogate, numbers that survive a round trip, bounded nesting) is checked on the
    // body's text before it is parsed (input/read-json.ts), so it is described rather than schema'd.
    payload: Type.Optional(
      Type.Unsafe<unknown>({
        not: { type: 'null' },
        description: 'Any JSON value but null, handed to the handler (default {}). No NUL characters or lone surrogates, numbers exactly representable, nested at most MAX_PAYLOAD_DEPTH deep.',
      }),
    ),
    max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Attempts after the first (default MAX_RETRIES).' })),
    idempotency_key: Type.Optional(IdempotencyKeySchema),
    retry: Type.Optional(RetryPolicySchema),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'An attempt running longer is aborted and fails (default: its handler\'s, else TASK_TIMEOUT_MS).' })),
  },
  { additionalProperties: false },
);
export type TaskInputBody = Static<typeof TaskInputSchema>;

export const BatchBodySchema = Type.Object(
  {
    tasks: Type.Array(TaskInputSchema, {
      minItems: 1,
      maxItems: 1000,
      description: 'Each task is validated and created on its own: an invalid one gets its own 400 in `results`, the others are created.',
    }),
  },
  { additionalProperties: false },
);
