SELECT stratum, hash(stratum) AS scode FROM (SELECT DISTINCT stratum FROM "pool")
