-- fail: line 2, column 69: unknown time unit 'secnd' (did you mean 'second'?)
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY TumblingWindow(  secnd, 10)
