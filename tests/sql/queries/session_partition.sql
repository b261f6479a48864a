-- inputs: trips
SELECT city, System.Timestamp() AS e, COUNT(*) AS n
FROM Input TIMESTAMP BY T
GROUP BY city, SessionWindow(second, 5, 60) OVER (PARTITION BY city)
