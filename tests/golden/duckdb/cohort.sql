WITH per_customer AS (
  SELECT
    "customer_id" AS customer_id,
    min("ts") AS first_ts,
    max("ts") AS last_ts,
    count(*) AS orders_total,
    CAST(count_if("ts" >= TIMESTAMP '2025-07-09 00:00:00') AS BIGINT) AS orders_180d,
    CAST(count_if("ts" >= TIMESTAMP '2025-01-05 00:00:00') AS BIGINT) AS orders_365d,
    CAST(count_if("ts" >= TIMESTAMP '2024-01-06 00:00:00') AS BIGINT) AS orders_730d,
    sum("amount") AS revenue_total,
    sum(CASE WHEN "ts" >= TIMESTAMP '2025-07-09 00:00:00' THEN "amount" ELSE 0.0 END) AS revenue_180d,
    sum(CASE WHEN "ts" >= TIMESTAMP '2025-01-05 00:00:00' THEN "amount" ELSE 0.0 END) AS revenue_365d,
    sum(CASE WHEN "ts" >= TIMESTAMP '2024-01-06 00:00:00' THEN "amount" ELSE 0.0 END) AS revenue_730d,
    count_if("discount_used") AS discount_orders,
    count("discount_used") AS flagged_orders
  FROM "tx"
  WHERE "ts" < TIMESTAMP '2026-01-05 00:00:00'
  GROUP BY "customer_id"
  -- dormant: days_since_last >= 90, i.e. the last purchase is before the start of
  -- day D - 90 + 1 (active: the complement)
  HAVING max("ts") < TIMESTAMP '2025-10-08 00:00:00'
),
dated AS (
  SELECT *,
    CAST(first_ts AS DATE) AS first_purchase,
    CAST(last_ts AS DATE) AS last_purchase
  FROM per_customer
),
features AS (
  SELECT *,
    datediff('day', last_purchase, DATE '2026-01-05') AS days_since_last,
    datediff('day', first_purchase, DATE '2026-01-05') AS tenure_days,
    CASE WHEN orders_total > 1
      THEN CAST(datediff('day', first_purchase, last_purchase) AS DOUBLE) / (orders_total - 1)
    END AS mean_gap_days
  FROM dated
)
SELECT
  customer_id, first_purchase, last_purchase, days_since_last,
  CASE
    WHEN days_since_last < 180 THEN 'short'
    WHEN days_since_last < 365 THEN 'mid'
    ELSE 'long'
  END AS tier,
  orders_total, orders_180d, orders_365d, orders_730d,
  revenue_total, revenue_180d, revenue_365d, revenue_730d,
  revenue_total / orders_total AS avg_order_value,
  tenure_days, mean_gap_days,
  CAST(days_since_last AS DOUBLE) / NULLIF(mean_gap_days, 0.0) AS overdue_ratio,
  -- orders in the last 365 days (recent) against the 365 before (prior = 730d - 365d)
  CASE WHEN orders_730d = 0 THEN 0.0
    ELSE CAST(2 * orders_365d - orders_730d AS DOUBLE) / orders_730d
  END AS trend,
  CAST(discount_orders AS DOUBLE) / NULLIF(flagged_orders, 0) AS discount_share
FROM features
ORDER BY customer_id
