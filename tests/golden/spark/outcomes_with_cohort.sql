SELECT o.*, c.`revenue_365d`, c.`tier` FROM `outcomes` AS o LEFT JOIN `cohort` AS c ON CAST(c.customer_id AS STRING) = o.customer_id
