-- The inline parent results of released steps (workflow_released_parents, 0018) cost about
-- max_bytes to decide, whatever the parents returned. 0018 built each step's object of all its
-- parents' results and measured it after: a fan-in of 4,100 parents with 64 KiB results built
-- 262 MB of jsonb, and the statement recording its last parent's success failed (54000: total size
-- of jsonb object elements exceeds the maximum) after 2.3 s holding the fan-in's row lock, on every
-- try, so the workflow could never succeed. Below that, every release cost the sum of all its
-- parents' results, on the critical path.
--
-- Now each step's parents are read one at a time, in the order its edges' index gives them, and the
-- object's JSON text is built as they come (`"key": result`, joined by `, `, in braces: the text
-- jsonb would print, keys in another order) beside its running size. The reading stops at the first
-- parent that takes the size past max_bytes (the WindowAgg reads its input only as far as the row
-- the LIMIT asks for, and one row ahead for lead()), or at the last parent: a step costs at most
-- max_bytes and two parents' results, and gets its parents inline only when the whole object fits.
-- A window string_agg, not jsonb_object_agg: a window aggregate is finished again for every row, and
-- finishing a jsonb object sorts its keys and copies it (300 small parents: 18-23 ms, against 1.5-4).
CREATE OR REPLACE FUNCTION workflow_released_parents(children uuid[], max_bytes integer)
RETURNS TABLE (child uuid, parents_json text)
LANGUAGE plpgsql VOLATILE ROWS 10 SET enable_seqscan = off AS $$
BEGIN
  -- Each parent reached by id (LATERAL with LIMIT), whatever the statistics of a new database say.
  RETURN QUERY
  SELECT c.id, r.o
    FROM unnest(children) c(id)
    CROSS JOIN LATERAL (
      SELECT CASE WHEN w.bytes <= max_bytes THEN '{' || w.pieces || '}' END AS o
        FROM (SELECT sum(octet_length(x.piece) + 2) OVER w AS bytes, string_agg(x.piece, ', ') OVER w AS pieces, lead(true) OVER w AS more
                FROM (SELECT to_json(p.step_key)::text || ': ' || COALESCE(p.result::text, 'null') AS piece
                        FROM workflow_edges e CROSS JOIN LATERAL (SELECT t.step_key, t.result FROM tasks t WHERE t.id = e.parent LIMIT 1) p
                       WHERE e.child = c.id) x
              WINDOW w AS (ROWS UNBOUNDED PRECEDING)) w
       WHERE w.bytes > max_bytes OR w.more IS NULL
       LIMIT 1) r;
END;
$$;
