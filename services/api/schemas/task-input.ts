/**
 * What POST /tasks and POST /tasks/batch accept, as JSON Schema. The OpenAPI document shows these,
 * and validation.ts enforces them (its patterns, bounds and enums are read from here). A new field
 * of a task request is added here first, then read in validation.ts; the property test
 * (test/unit/schema-agreement.test.ts) fails until both agree.
 */
import { Static, Type } from '@sinclair/typebox';
import { PrioritySchema, RetryPolicySchema, TaskTypeSchema, TimeoutMsSchema, TimeSchema } from '../../core/tasks/task-fields';

/** How far ahead a delayed task may be due: 366 days. */
export const MAX_DELAY_MS = 366 * 86_400_000;

export { RetryPolicySchema };

export const IdempotencyKeySchema = Type.String({
  pattern: '^[\\x21-\\x7e]{1,255}$',
  description: '1-255 printable ASCII characters. A repeated request with the same key returns the task it created (200); the same key with a different request is a 409.',
});

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
    timeout_ms: Type.Optional(TimeoutMsSchema),
    run_at: Type.Optional(
      Type.Unsafe<string>({
        ...TimeSchema,
        description: `Run it no earlier than this time (at most 366 days ahead; a time in the past runs it now). Until then the task is \`scheduled\`. Not with delay_ms. ${TimeSchema.description}`,
      }),
    ),
    delay_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_DELAY_MS, description: 'Run it no earlier than this many milliseconds from now (at most 366 days; 0 runs it now). Not with run_at.' })),
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
