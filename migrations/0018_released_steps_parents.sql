-- The inline parent results of steps a statement released, read with a snapshot of their own.
-- Computed in the releasing statement's own query, they were read with the snapshot the statement
-- took when it began: a batch that waited for a fan-in's row lock while other batches committed
-- their parents' successes found the fan-in ready, and sent it those parents' results as null.
-- VOLATILE PL/pgSQL takes a new snapshot for its query, after the release (and its lock wait), that
-- also sees what the calling statement itself wrote. One call per statement, for all its steps.
CREATE FUNCTION workflow_released_parents(children uuid[], max_bytes integer)
RETURNS TABLE (child uuid, parents_json text)
LANGUAGE plpgsql VOLATILE ROWS 10 SET enable_seqscan = off AS $$
BEGIN
  -- Each parent reached by id (LATERAL with LIMIT), whatever the statistics of a new database say.
  RETURN QUERY
  SELECT x.child, CASE WHEN octet_length(x.o::text) <= max_bytes THEN x.o::text END
    FROM (SELECT e.child, jsonb_object_agg(p.step_key, p.result) AS o
            FROM workflow_edges e CROSS JOIN LATERAL (SELECT t.step_key, t.result FROM tasks t WHERE t.id = e.parent LIMIT 1) p
           WHERE e.child = ANY(children)
           GROUP BY e.child) x;
END;
$$;
