-- fail: line 3, column 18: DATEDIFF: unknown date part 'minuet' (did you mean 'minute'?)
SELECT city, COUNT(*) AS n,
    MAX(DATEDIFF(minuet, t, t)) AS d
FROM Input GROUP BY city, TumblingWindow(minute, 5)
