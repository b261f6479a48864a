-- inputs: trips
CREATE TABLE Input (id bigint, fare float, dist bigint, city nvarchar(max));
SELECT id, fare, dist, city
FROM Input
