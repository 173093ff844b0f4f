-- Stripe-style idempotency: a key remembers the request that created a task, for a limited time.
CREATE TABLE idempotency_keys (
  key          text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
  -- Deferred: the key is claimed first (it decides replay vs. new), the task row follows in the same transaction.
  task_id      uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  -- sha256 of the canonical request body; same key with a different body is a conflict.
  request_hash text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL
);

CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
