-- fail: line 2, column 34: aggregates are not allowed in WHERE
SELECT city FROM Input WHERE 1 < COUNT(*)
