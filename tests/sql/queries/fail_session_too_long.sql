-- fail: line 2, column 52: SessionWindow: the maximum duration must be at most 7 days
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY SessionWindow(day, 1, 8)
