SELECT (CAST(CONV(SUBSTRING(MD5('reactivation-2026q1' || ':' || CAST(customer_id AS STRING)), 1, 15), 16, 10) AS BIGINT) / POWER(2, 60)) AS u FROM cohort
