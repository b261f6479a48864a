-- fail: line 5, column 6: 'Exits' is neither an input nor a WITH step
-- known_inputs: Entry
WITH Cars AS (SELECT car, t FROM Entry TIMESTAMP BY t)
SELECT c.car FROM Cars c
JOIN Exits x ON c.car = x.car AND DATEDIFF(minute, c, x) BETWEEN 0 AND 15
