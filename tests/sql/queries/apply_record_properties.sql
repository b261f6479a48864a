-- inputs: trips
SELECT i.id, p.PropertyName AS name, p.PropertyValue AS value
FROM Input i CROSS APPLY GetRecordProperties(i.meta) AS p
WHERE i.id <= 2
