SELECT CAST(customer_id AS VARCHAR) AS id, count(*) AS n, count(*) OVER () AS ids
        FROM "cohort" GROUP BY customer_id HAVING count(*) > 1 ORDER BY n DESC, id LIMIT 1
