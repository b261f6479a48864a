-- fail: line 2, column 8: TumblingWindow can only be used directly in GROUP BY
SELECT TumblingWindow(second, 1) FROM Input
