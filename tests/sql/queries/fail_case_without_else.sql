-- fail: line 3, column 5: CASE needs an ELSE
SELECT
    CASE WHEN temperature < 60 THEN 'Alert' END AS status
FROM Input
