-- inputs: trips
SELECT id,
    LAG(id, 2, -1) OVER (LIMIT DURATION(second, 30)) AS twoBack,
    LAST(id) OVER (PARTITION BY city LIMIT DURATION(minute, 1) WHEN dist > 2) AS lastFar,
    SUM(dist) OVER (LIMIT DURATION(second, 10)) AS recent
FROM Input TIMESTAMP BY T
