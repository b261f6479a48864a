-- inputs: trips
SELECT i.id, e.ArrayIndex, e.ArrayValue
FROM Input i OUTER APPLY GetArrayElements(i.tags) AS e
