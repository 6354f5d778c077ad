SELECT CAST(c.tier AS VARCHAR), count(*), count(r.customer_id)
        FROM "cohort" c LEFT JOIN (
            SELECT DISTINCT customer_id FROM (SELECT CAST("client" AS VARCHAR) AS customer_id, CAST("bought_at" AS TIMESTAMP) AS ts, CAST("net" AS DOUBLE) AS amount
    FROM "tx"
    WHERE CAST("bought_at" AS TIMESTAMP) >= TIMESTAMP '2026-01-05 00:00:00' AND CAST("bought_at" AS TIMESTAMP) < TIMESTAMP '2026-02-01 00:00:00')
        ) r ON r.customer_id = CAST(c.customer_id AS VARCHAR)
        GROUP BY 1
