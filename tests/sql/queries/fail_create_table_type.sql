-- fail: line 2, column 37: unknown type 'number'
CREATE TABLE Input (id bigint, fare number)
SELECT id FROM Input
