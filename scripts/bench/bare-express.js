// Baseline for the accept benchmark: the least an express service can do per task — validate
// nothing, one pg INSERT, one Redis LPUSH. Our API must accept at least this rate.
const express = require('express');
const { Pool } = require('pg');
const Redis = require('ioredis');
const { randomUUID } = require('node:crypto');

const pool = new Pool({ connectionString: process.env.POSTGRES_URL, max: 20 });
const [rh, rp] = process.env.REDIS_ADDR.split(':');
const redis = new Redis({ host: rh, port: Number(rp) });
const app = express();
app.use(express.json());
app.post('/tasks', async (req, res) => {
  const id = randomUUID();
  await pool.query('INSERT INTO tasks (id, type, priority, payload, max_retries) VALUES ($1, $2, $3, $4, 5)', [id, req.body.type, 'default', '{}']);
  await redis.lpush('bare:q', id);
  res.status(201).json({ id });
});
const [h, p] = process.env.API_ADDR.split(':');
app.listen(Number(p), h, () => console.log('{"msg":"listening"}'));
