-- inputs: trips
SELECT System.Timestamp() AS e, COUNT(*) AS n
FROM Input TIMESTAMP BY T
GROUP BY SlidingWindow(ss, 10)
HAVING COUNT(*) >= 3
