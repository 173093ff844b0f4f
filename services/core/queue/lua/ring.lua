-- ring: ring the doorbell, for a worker passing on a wake-up it cannot use (its slots filled up).
-- KEYS: doorbell
-- @include doorbell
ring(KEYS[1])
return 1
