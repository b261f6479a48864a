-- fail: line 2, column 8: CollectTop: CollectTop(n, ...) needs a positive integer n
SELECT CollectTop(0, id) OVER (ORDER BY dist) AS x FROM Input TIMESTAMP BY T GROUP BY TumblingWindow(minute, 1)
