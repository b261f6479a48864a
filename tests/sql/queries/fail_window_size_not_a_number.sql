-- fail: line 2, column 75: TumblingWindow: the size (argument 2) must be a number, got 'ten'
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY TumblingWindow(second, 'ten')
