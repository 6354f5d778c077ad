SELECT SUM(amount) AS sum_amount FROM `tx_clean`
