-- fail: line 3, column 21: GROUP BY needs a window
SELECT city, COUNT(*)
FROM Input GROUP BY city
