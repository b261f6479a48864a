-- fail: line 2, column 12: the number 9223372036854775808 is outside the bigint range; write it as a float (9223372036854775808.0)
SELECT v + 9223372036854775808 AS w FROM Input
