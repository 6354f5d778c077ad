SELECT o.*, c."revenue_365d", c."tier" FROM "outcomes" o
        LEFT JOIN "cohort" c ON CAST(c.customer_id AS VARCHAR) = o.customer_id
