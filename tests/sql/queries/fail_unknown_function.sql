-- fail: line 2, column 8: unknown function 'LENN' (did you mean 'LEN'?)
SELECT LENN(city) FROM Input
