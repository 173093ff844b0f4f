/**
 * One admin key per test process: the API processes a test starts install it through
 * BOOTSTRAP_ADMIN_KEY (only its hash is stored), and the test's clients send it.
 */
import { generateKey } from '../../services/core/tenancy/api-key';

export const TEST_KEY = generateKey().key;
export const AUTH_HEADER: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_KEY}` };
export const AUTH_ENV: Readonly<Record<string, string>> = { BOOTSTRAP_ADMIN_KEY: TEST_KEY };
