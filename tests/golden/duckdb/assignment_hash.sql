SELECT CAST(('0x' || substr(md5('s' || ':' || CAST(customer_id AS VARCHAR)), 1, 15)) AS BIGINT) AS x FROM c
