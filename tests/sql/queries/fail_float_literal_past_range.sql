-- fail: line 2, column 75: the number 1e400 is outside the float range
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY TumblingWindow(second, 1e400)
