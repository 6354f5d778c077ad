SELECT customer_id FROM (SELECT customer_id FROM assigned) a WHERE NOT regexp_full_match(customer_id, '-?[0-9]+') LIMIT 1
