SELECT (CAST(('0x' || substr(md5('reactivation-2026q1' || ':' || CAST(customer_id AS VARCHAR)), 1, 15)) AS BIGINT) / 2^60) AS u FROM cohort
