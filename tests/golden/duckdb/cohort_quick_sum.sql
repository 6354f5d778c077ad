SELECT sum(amount) AS sum_amount FROM "tx_clean"
