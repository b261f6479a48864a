-- inputs: trips
SELECT System.Timestamp() AS WindowEnd, COUNT(*) AS n, COUNT(dist) AS withDist,
    COUNT(DISTINCT city) AS cities, SUM(dist) AS total, AVG(dist) AS mean, MIN(dist) AS lo,
    MAX(dist) AS hi, STDEV(dist) AS sd, VAR(dist) AS v, SUM(TRY_CAST(fare AS float)) AS fares
FROM Input TIMESTAMP BY T
GROUP BY TumblingWindow(second, 10)
