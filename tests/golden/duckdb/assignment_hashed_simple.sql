SELECT cid AS customer_id, scode, h, CASE WHEN md5('global-holdout' || ':' || cid) < '0ccccccccccccd0' THEN -1 ELSE CASE WHEN h < '666666666666680' THEN 0 WHEN h < '999999999999a00' THEN 1 WHEN h < 'ccccccccccccd00' THEN 2 ELSE 3 END END AS a
        FROM (SELECT customer_id, scode, cid, md5('reactivation-2026q1' || ':' || cid) AS h
              FROM (SELECT p.customer_id, hash(p.stratum) AS scode, CAST(p.customer_id AS VARCHAR) AS cid
                    FROM "pool" p))
