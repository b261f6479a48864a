-- fail: line 3, column 38: only one window per GROUP BY
SELECT COUNT(*) FROM Input TIMESTAMP BY T
GROUP BY TumblingWindow(second, 10), HoppingWindow(second, 10, 5)
