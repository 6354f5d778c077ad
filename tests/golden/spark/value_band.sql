SELECT `customer_id`, `tier`, `revenue_365d`, CASE WHEN `revenue_365d` > 120.00000012e0 THEN 'high' WHEN `revenue_365d` > 40.00000004e0 THEN 'mid' ELSE 'low' END AS value_band FROM `cohort`
