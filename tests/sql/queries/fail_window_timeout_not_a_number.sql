-- fail: line 2, column 74: SessionWindow: the timeout (argument 2) must be a number, got 'x'
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY SessionWindow(second, 'x', 60)
