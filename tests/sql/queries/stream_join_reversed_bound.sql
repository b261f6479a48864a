-- inputs: toll
SELECT ex.car, en.t AS entered
FROM Exit ex TIMESTAMP BY t
JOIN Entry en TIMESTAMP BY t
ON en.car = ex.car AND DATEDIFF(minute, en, ex) BETWEEN 0 AND 20
