SELECT count(*) FILTER (WHERE a.customer_id IS NOT NULL),
               count(*) FILTER (WHERE a.customer_id IS NULL),
               any_value(t.cid) FILTER (WHERE a.customer_id IS NULL)
        FROM (SELECT CAST("client" AS VARCHAR) AS cid FROM "tx"
              WHERE CAST("bought_at" AS TIMESTAMP) >= TIMESTAMP '2026-01-05 00:00:00') t
        LEFT JOIN (SELECT customer_id FROM assigned) a ON a.customer_id = t.cid
