-- inputs: trips
WITH a AS (SELECT id, 'low' AS band FROM Input TIMESTAMP BY T WHERE dist < 3
           UNION
           SELECT id, 'high' AS band FROM Input TIMESTAMP BY T WHERE dist >= 3)
SELECT id, band INTO bands FROM a
SELECT COUNT(*) AS n, System.Timestamp() AS t INTO counts FROM a GROUP BY TumblingWindow(day, 1)
