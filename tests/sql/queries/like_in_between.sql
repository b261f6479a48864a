-- inputs: trips
SELECT id, city
FROM Input
WHERE (city LIKE 'O_lo' OR city LIKE '[BT]%n' OR city NOT LIKE '%[^a-z]%')
  AND id IN (1, 2, 3, 5, 6) AND dist NOT BETWEEN 5 AND 100
