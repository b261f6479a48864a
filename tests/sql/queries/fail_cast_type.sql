-- fail: line 2, column 21: unknown type 'integer'
SELECT CAST(id AS   integer) FROM Input
