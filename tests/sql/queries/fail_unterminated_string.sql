-- fail: line 3, column 14: unterminated string literal
SELECT city FROM Input
WHERE city = 'Oslo AND id = 2
