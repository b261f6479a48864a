-- fail: line 2, column 14: fare must be in GROUP BY or inside an aggregate
SELECT city, fare, COUNT(*) AS n
FROM Input TIMESTAMP BY T GROUP BY city, TumblingWindow(second, 10)
