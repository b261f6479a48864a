-- fail: line 2, column 14: expected FROM, found end of query
SELECT a, b c
