WITH cand AS (
            SELECT x.scode AS g, substr(x.h, 1, 2) AS b, x.h, x.customer_id
            FROM "hashed" x
            SEMI JOIN (SELECT DISTINCT g, b FROM "need") p
              ON x.scode = p.g AND substr(x.h, 1, 2) = p.b
            WHERE ((x.h >= '3f' AND x.h < '40') OR (x.h >= '66' AND x.h < '67') OR (x.h >= '99' AND x.h < '9a')) AND NOT holdout
        ), ranked AS (
            SELECT g, b, substr(h, 1, 15) AS k, CAST(customer_id AS VARCHAR) AS cid,
                   row_number() OVER (PARTITION BY g, b ORDER BY substr(h, 1, 15),
                                      CAST(customer_id AS VARCHAR)) - 1 AS off
            FROM cand
        )
        SELECT n.g, n.rnk, r.k, r.cid FROM ranked r JOIN "need" n USING (g, b, off)
