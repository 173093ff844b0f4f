/**
 * The bulk bodies (POST /tasks/cancel, POST /tasks/retry) and their answer, as JSON Schema.
 * operator/bulk-routes.ts enforces the body with its bounds read from here; `limit`'s maximum is
 * BULK_MAX_LIMIT, a setting, so the schema is made for a given maximum.
 */
import { Type } from '@sinclair/typebox';
import { SETTINGS } from '../../core/config/config';
import { Nullable } from '../../core/schema/json-schema';
import type { BulkAction } from '../../core/operator/bulk-actions';
import type { TaskStatus } from '../../core/tasks/priority';
import { filterSchema } from '../../core/tasks/task-filter';

/** The statuses each action applies to; also the default when the filter names none. */
export const ACTION_STATUSES: Record<BulkAction, readonly TaskStatus[]> = {
  cancel: ['waiting', 'scheduled', 'queued', 'retrying', 'running'],
  retry: ['dead', 'cancelled'],
};

export const DEFAULT_BULK_MAX_LIMIT = SETTINGS.BULK_MAX_LIMIT.parse(SETTINGS.BULK_MAX_LIMIT.default);
export const DEFAULT_BULK_SCAN_ROWS = SETTINGS.BULK_SCAN_ROWS.parse(SETTINGS.BULK_SCAN_ROWS.default);

export function bulkBodySchema(action: BulkAction, maxLimit = DEFAULT_BULK_MAX_LIMIT) {
  return Type.Object(
    {
      filter: Type.Optional({
        ...filterSchema(ACTION_STATUSES[action]),
        description: `Which tasks; a status must be one ${action} applies to (the default: all of ${ACTION_STATUSES[action].join(', ')}).`,
      }),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: maxLimit, description: `At most this many tasks, newest first (default and maximum: BULK_MAX_LIMIT, ${maxLimit} here).` })),
      dry_run: Type.Optional(Type.Boolean({ default: false, description: 'Count the matching tasks without changing them.' })),
      cursor: Type.Optional(Type.String({ description: 'Carry on where an earlier call with the same filter stopped: its next_cursor, as it came. Without one, the newest matching tasks come first.' })),
    },
    { additionalProperties: false },
  );
}

export const BulkResultSchema = Type.Object(
  {
    matched: Type.Integer({ minimum: 0, description: 'Tasks the filter matched (up to limit).' }),
    changed: Type.Integer({ minimum: 0, description: 'Tasks this call changed (0 on a dry run; fewer than matched when another call changed some first).' }),
    has_more: Type.Boolean({ description: 'More tasks may match beyond where this call stopped (at limit, or at BULK_SCAN_ROWS rows read): call again with next_cursor to carry on.' }),
    next_cursor: Nullable(Type.String(), { description: 'Where this call stopped, to send as cursor; null when has_more is false. A filter that matches few tasks may match none in one call and still have one.' }),
    dry_run: Type.Boolean(),
  },
  { additionalProperties: false },
);
