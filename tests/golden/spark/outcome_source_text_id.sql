SELECT customer_id FROM (SELECT customer_id FROM assigned) AS a WHERE NOT (customer_id RLIKE '^(?:-?[0-9]+)$') LIMIT 1
