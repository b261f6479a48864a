-- fail: line 2, column 39: DATEPART: unknown date part 'weeks' (did you mean 'week'?)
SELECT city FROM Input WHERE DATEPART(weeks, t) = 2
