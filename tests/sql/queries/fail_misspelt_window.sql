-- fail: line 2, column 52: unknown window or function 'TumblinWindow' (did you mean 'TumblingWindow'?)
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY TumblinWindow(second, 10)
