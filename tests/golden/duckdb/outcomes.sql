WITH t AS (
    SELECT CAST("customer_id" AS VARCHAR) AS customer_id, CAST("ts" AS TIMESTAMP) AS ts, CAST("amount" AS DOUBLE) AS amount
    FROM "tx"
    WHERE CAST("ts" AS TIMESTAMP) >= TIMESTAMP '2026-01-05 00:00:00' AND CAST("ts" AS TIMESTAMP) < TIMESTAMP '2026-02-01 00:00:00'
), per AS (
    SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, min(ts) AS first_ts
    FROM t GROUP BY customer_id
)
SELECT a.customer_id, a.arm, a.stratum,
       CASE WHEN per.orders > 0 THEN 1 ELSE 0 END AS reactivated,
       COALESCE(per.revenue, 0.0) AS revenue,
       COALESCE(per.orders, 0) AS orders,
       datediff('day', TIMESTAMP '2026-01-05 00:00:00', per.first_ts) AS days_to_reactivation,
       27 AS exposure_days,
       FALSE AS window_closed
FROM "assigned" a LEFT JOIN per ON per.customer_id = a.customer_id
