-- inputs: trips
SELECT id, city
FROM Input TIMESTAMP BY T
WHERE ISFIRST(second, 10) OVER (PARTITION BY city) = 1
