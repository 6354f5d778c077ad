SELECT CAST(customer_id AS STRING) AS id, COUNT(*) AS n, COUNT(*) OVER () AS ids FROM `cohort` GROUP BY customer_id HAVING COUNT(*) > 1 ORDER BY n DESC, id NULLS LAST LIMIT 1
