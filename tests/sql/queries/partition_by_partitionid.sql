-- inputs: trips
SELECT city, COUNT(*) AS n
FROM Input PARTITION BY PartitionId TIMESTAMP BY T
GROUP BY city, TumblingWindow(minute, 1)
