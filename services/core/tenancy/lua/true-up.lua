-- true-up: set each tenant's unfinished base to Postgres's count, with the admitted counter as it
-- was read before that count was taken (so admissions since then are added on top).
-- KEYS: unfinished base (hash), admitted at base (hash)
-- ARGV: groups of 3: tenant, unfinished count, admitted counter before the count
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
return #ARGV / 3
