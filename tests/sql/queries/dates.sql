-- inputs: trips
SELECT id,
    DATEADD(minute, 90, T) AS plus90, DATEADD(month, 1, T) AS nextMonth,
    DATEPART(second, T) AS sec, DATEPART(weekday, T) AS wd, DATENAME(month, T) AS mon,
    DATEDIFF(ms, '2024-01-01T10:00:00Z', T) AS ms,
    DATETIMEFROMPARTS(2024, 2, 29, 23, 59, 58, 7) AS built,
    CAST(T AS datetime) AS t
FROM Input TIMESTAMP BY T
WHERE id <= 2
