-- fail: line 3, column 83: the upper DATEDIFF bound of a JOIN must be a number, got 'x'
SELECT a.k FROM Input a TIMESTAMP BY t
JOIN Input b TIMESTAMP BY t ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 0 AND 'x'
