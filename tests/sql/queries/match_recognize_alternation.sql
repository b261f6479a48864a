-- inputs: toll
SELECT *
FROM Ops TIMESTAMP BY t OVER atm
MATCH_RECOGNIZE (
    LIMIT DURATION(minute, 1)
    PARTITION BY atm
    MEASURES Last(Bad.code) AS lastBad, Count(Bad.code) AS bads, First(Good.t) AS since
    AFTER MATCH SKIP PAST LAST ROW
    PATTERN (Good (Bad | Worse){2})
    DEFINE
        Good AS Good.code = 'ok',
        Bad AS Bad.code = 'warn',
        Worse AS Worse.code = 'fail'
) AS m
