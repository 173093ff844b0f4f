/**
 * GET /tasks: its query parameters and its page, as JSON Schema. operator/list-route.ts reads its
 * parameter names and limit bounds from here.
 */
import { Type } from '@sinclair/typebox';
import { Nullable } from '../../core/schema/json-schema';
import { filterSchema } from '../../core/tasks/task-filter';
import { TaskSchema } from './responses';

export const ListQuerySchema = Type.Object(
  {
    ...filterSchema().properties,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Tasks per page.' })),
    cursor: Type.Optional(Type.String({ description: 'next_cursor of the page before, as it came.' })),
  },
  { additionalProperties: false },
);

/** A task in a page: no payload or result (GET /tasks/{id} has them) and no runs. */
export const TaskSummarySchema = Type.Omit(TaskSchema, ['payload', 'result', 'runs'], { additionalProperties: false });

export const TaskPageSchema = Type.Object(
  {
    tasks: Type.Array(TaskSummarySchema, { description: 'Newest first.' }),
    next_cursor: Nullable(Type.String(), { description: 'The next page, or null at the last one (a short or empty page may still have one).' }),
  },
  { additionalProperties: false },
);
