-- fail: line 2, column 78: HoppingWindow: the hop (argument 3) must be a number, got 'five'
SELECT COUNT(*) FROM Input TIMESTAMP BY T GROUP BY HoppingWindow(second, 10, 'five')
