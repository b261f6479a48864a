-- inputs: toll
SELECT en.car, en.toll, DATEDIFF(second, en.t, ex.t) AS secs, System.Timestamp() AS ts
FROM Entry en TIMESTAMP BY t
JOIN Exit ex TIMESTAMP BY t
ON en.car = ex.car AND en.toll = ex.toll AND DATEDIFF(minute, en, ex) BETWEEN 0 AND 15
