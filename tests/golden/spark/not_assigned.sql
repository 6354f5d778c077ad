SELECT c.customer_id FROM cohort AS c WHERE NOT EXISTS(SELECT 1 FROM `assigned_before` AS a WHERE a.experiment = 'exp' AND a.version = 1 AND a.customer_id = CAST(c.customer_id AS STRING))
