SELECT cid AS customer_id, scode, h, md5('global-holdout' || ':' || cid) < '0ccccccccccccd0' AS holdout
        FROM (SELECT customer_id, scode, cid, md5('reactivation-2026q1' || ':' || cid) AS h
              FROM (SELECT p.customer_id, hash(p.stratum) AS scode, CAST(p.customer_id AS VARCHAR) AS cid
                    FROM "pool" p))
