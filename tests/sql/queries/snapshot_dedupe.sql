-- inputs: trips
WITH d AS (
    SELECT id, city, COUNT(*) AS copies FROM Input TIMESTAMP BY T GROUP BY id, city, System.Timestamp()
)
SELECT id, copies INTO dedup FROM d
