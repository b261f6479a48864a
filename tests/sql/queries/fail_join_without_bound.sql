-- fail: line 3, column 1: a JOIN of two streams needs DATEDIFF
SELECT a.id FROM Input a
JOIN Input b ON a.id = b.id
