-- inputs: trips
SELECT id,
    CASE city WHEN 'oslo' THEN 'O' WHEN 'Bergen' THEN 'B' ELSE NULL END AS c,
    UPPER(city) AS up, LOWER(city) AS low, LEN(city) AS n, SUBSTRING(city, 2, 3) AS sub,
    CONCAT(city, '-', id) AS cc, ABS(-dist) AS a, ROUND(dist / 4.0, 1) AS r,
    FLOOR(dist) AS f, CEILING(dist) AS ce, CHARINDEX('l', city) AS ci,
    TRY_CAST(fare AS float) AS fare, dist * 2 + 1 AS expr, id % 2 AS odd
FROM Input
WHERE id < 6
