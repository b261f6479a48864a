-- inputs: trips
SELECT System.Window().Id AS w, System.Timestamp() AS e, COUNT(*) AS n
FROM Input TIMESTAMP BY T
GROUP BY Windows(TumblingWindow(second, 30), HoppingWindow(second, 30, 15))
