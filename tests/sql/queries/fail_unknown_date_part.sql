-- fail: line 2, column 16: DATEADD: unknown date part 'fortnight'
SELECT DATEADD(fortnight, 1, t) AS later FROM Input
