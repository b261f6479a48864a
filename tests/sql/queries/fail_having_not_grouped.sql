-- fail: line 3, column 80: i.dist must be in GROUP BY or inside an aggregate
SELECT i.city, UPPER(i.city) AS up, MAX(CAST(i.dist AS float)) AS far
FROM Input i TIMESTAMP BY T GROUP BY i.city, TumblingWindow(second, 10) HAVING i.dist > 1
