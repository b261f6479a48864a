-- fail: line 2, column 8: SELECT * cannot be used with GROUP BY
SELECT * FROM Input TIMESTAMP BY T GROUP BY TumblingWindow(second, 1)
