-- inputs: toll
SELECT en.car, en.toll, System.Timestamp() AS gaveUpAt
FROM Entry en TIMESTAMP BY t
LEFT OUTER JOIN Exit ex TIMESTAMP BY t
ON en.car = ex.car AND DATEDIFF(minute, en, ex) BETWEEN 1 AND 10
WHERE ex.car IS NULL
