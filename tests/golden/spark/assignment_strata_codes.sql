SELECT stratum, HASH(stratum) AS scode FROM (SELECT DISTINCT stratum FROM `pool`)
