SELECT quantile_cont(risk, 0.8) FROM "scored"
