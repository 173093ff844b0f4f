/** POST /admin/keys's body, checked field by field with the bounds of schemas/admin.ts; a 400 names the field. */
import { isScope, Scope } from '../../core/tenancy/api-key';
import { isTenantName } from '../../core/tenancy/tenant';
import { badRequest } from '../problem';
import { KeyInputSchema, MAX_KEY_DESCRIPTION, MAX_KEY_EXPIRY_MS } from '../schemas/admin';

export interface KeyInput {
  tenant: string;
  scopes: Scope[];
  expiresInMs: number | null;
  description: string;
}

const invalid = (field: string, message: string) => badRequest(`${field} ${message}`, [{ field, message }]);
/** A Set, not `in`: `constructor`, `toString` or `__proto__` (an object's by its prototype) are no fields either. */
const KNOWN = new Set(Object.keys(KeyInputSchema.properties));

export function validateKeyInput(body: unknown): KeyInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the body must be a JSON object', [{ field: 'body', message: 'must be a JSON object' }]);
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) throw invalid(k, 'is not a field of a key');
  if (typeof b.tenant !== 'string' || !isTenantName(b.tenant)) throw invalid('tenant', 'must be 1-63 characters of a-z 0-9 _ . - starting with a letter or digit');
  if (!Array.isArray(b.scopes) || b.scopes.length === 0) throw invalid('scopes', 'must be a non-empty list of tasks:write, tasks:read, admin');
  const scopes = b.scopes as unknown[];
  scopes.forEach((s, i) => {
    if (typeof s !== 'string' || !isScope(s)) throw invalid(`scopes[${i}]`, 'must be one of tasks:write, tasks:read, admin');
    if (scopes.indexOf(s) !== i) throw invalid(`scopes[${i}]`, 'is given twice');
  });
  const exp = b.expires_in_ms;
  if (exp !== undefined && exp !== null && (typeof exp !== 'number' || !Number.isInteger(exp) || exp < 1 || exp > MAX_KEY_EXPIRY_MS)) throw invalid('expires_in_ms', `must be an integer from 1 to ${MAX_KEY_EXPIRY_MS}, or null`);
  const description = b.description ?? '';
  // Characters as the schema's maxLength and Postgres's length() count them (code points, not UTF-16 units).
  if (typeof description !== 'string' || [...description].length > MAX_KEY_DESCRIPTION) throw invalid('description', `must be a string of at most ${MAX_KEY_DESCRIPTION} characters`);
  return { tenant: b.tenant, scopes: scopes as Scope[], expiresInMs: (exp as number | null | undefined) ?? null, description };
}
