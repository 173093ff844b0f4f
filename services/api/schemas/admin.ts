/**
 * The admin routes' bodies and answers (GET /admin/tenants, GET|POST /admin/keys,
 * POST /admin/keys/{id}/revoke), as JSON Schema; admin/admin-input.ts reads its bounds from here.
 */
import { Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from '../../core/schema/json-schema';
import { SCOPES } from '../../core/tenancy/api-key';
import { TENANT_PATTERN } from '../../core/tenancy/tenant';

const Time = Type.String({ format: 'date-time' });
const OwnLimit = (description: string) => Nullable(Type.Number({ minimum: 0 }), { description: `${description} Null: the environment's setting.` });

export const TenantSummarySchema = Type.Object(
  {
    name: Type.String({ pattern: TENANT_PATTERN.source }),
    rate_limit: OwnLimit('Its own rate limit, tasks per second (0: none).'),
    burst: OwnLimit('Its own burst.'),
    max_unfinished: OwnLimit('Its own cap on unfinished tasks (0: none).'),
    max_running: OwnLimit('Its own cap on running tasks (0: none).'),
    weight: OwnLimit('Its own share of the workers.'),
    effective: Type.Object(
      {
        rate_limit: Type.Number({ minimum: 0 }),
        burst: Type.Number({ minimum: 0 }),
        max_unfinished: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false, description: 'The limits that apply: its own, else the TENANT_* settings (0: unlimited).' },
    ),
    unfinished: Type.Integer({ minimum: 0, description: 'Its tasks not yet final now (waiting, scheduled, queued, running, retrying).' }),
    created_at: Time,
    updated_at: Time,
  },
  { additionalProperties: false },
);
export const TenantListSchema = Type.Object({ tenants: Type.Array(TenantSummarySchema) }, { additionalProperties: false });

export const KeyIdSchema = Type.String({ pattern: '^[0-9a-f]{16}$', description: 'The public id of a key (16 hex digits; the key text is tsk_<id>_<secret>).' });
export const ScopeSchema = StringEnum(SCOPES);

export const KeySchema = Type.Object(
  {
    id: KeyIdSchema,
    tenant: Type.String(),
    scopes: Type.Array(ScopeSchema),
    description: Type.String(),
    created_at: Time,
    expires_at: Nullable(Time),
    revoked_at: Nullable(Time),
    last_used_at: Nullable(Time, { description: 'To within a few seconds.' }),
  },
  { additionalProperties: false },
);
export const KeyListSchema = Type.Object({ keys: Type.Array(KeySchema) }, { additionalProperties: false });
export const CreatedKeySchema = Type.Object(
  { ...KeySchema.properties, key: Type.String({ description: 'The key: shown in this answer only (only its hash is stored).' }) },
  { additionalProperties: false },
);

export const MAX_KEY_DESCRIPTION = 200;
export const MAX_KEY_EXPIRY_MS = 3_650 * 86_400_000;

export const KeyInputSchema = Type.Object(
  {
    tenant: Type.String({ pattern: TENANT_PATTERN.source, description: 'The tenant the key acts on (created when missing).' }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: SCOPES.length, uniqueItems: true }),
    expires_in_ms: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: MAX_KEY_EXPIRY_MS }), { description: 'Milliseconds from now; absent or null: never.' })),
    description: Type.Optional(Type.String({ maxLength: MAX_KEY_DESCRIPTION })),
  },
  { additionalProperties: false },
);

export const KeyListQuerySchema = Type.Object({}, { additionalProperties: false, description: 'An admin names a tenant with ?tenant= to list only its keys.' });
