-- inputs: trips
SELECT System.Timestamp() AS e, COUNT(*) AS n
FROM Input TIMESTAMP BY T
GROUP BY HoppingWindow(Duration(second, 20), Hop(second, 10), Offset(second, 5))
