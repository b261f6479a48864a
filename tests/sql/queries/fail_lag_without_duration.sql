-- fail: line 2, column 8: LAG needs OVER (LIMIT DURATION(unit, n))
SELECT LAG(id) OVER (PARTITION BY city) FROM Input
