-- fail: line 2, column 8: SELECT * cannot be used with JOIN
SELECT * FROM Entry en TIMESTAMP BY t
JOIN Exit ex TIMESTAMP BY t ON en.car = ex.car AND DATEDIFF(minute, en, ex) BETWEEN 0 AND 15
