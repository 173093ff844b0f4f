-- Tenants own tasks; API keys authenticate requests as a tenant with scopes.
CREATE TABLE tenants (
  name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  -- NULL: the environment's default (TENANT_*); 0: unlimited.
  rate_limit     integer CHECK (rate_limit >= 0),
  burst          integer CHECK (burst >= 0),
  max_unfinished integer CHECK (max_unfinished >= 0),
  max_running    integer CHECK (max_running >= 0),
  weight         integer CHECK (weight BETWEEN 1 AND 1000),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every task that existed before tenants belongs to `default`, as every request does with AUTH_MODE=off.
INSERT INTO tenants (name) VALUES ('default');

-- A constant default: Postgres 11+ adds the column without rewriting the table. No foreign key:
-- it would cost every insert a lookup, and tenants are never deleted while they own tasks.
ALTER TABLE tasks ADD COLUMN tenant text NOT NULL DEFAULT 'default';

-- Idempotency keys are per tenant: two tenants may use the same key independently.
ALTER TABLE idempotency_keys ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey, ADD PRIMARY KEY (tenant, key);

CREATE TABLE api_keys (
  -- Public part of the key (tsk_<id>_<secret>): found by it, then the secret is compared in constant time.
  id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  tenant       text NOT NULL REFERENCES tenants (name),
  -- sha256 of the whole key; the key itself is shown once, never stored.
  secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
  scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['tasks:write', 'tasks:read', 'admin'] AND cardinality(scopes) > 0),
  description  text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz
);

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant);
