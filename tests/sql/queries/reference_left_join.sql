-- inputs: trips
-- references: Rules
SELECT i.id, i.city, r.limit AS lim
FROM Input i LEFT OUTER JOIN Rules r ON i.city = r.city
WHERE i.id <= 6
