-- inputs: trips
SELECT city, TopOne() OVER (ORDER BY dist DESC) AS far, Collect(id) AS ids
FROM Input TIMESTAMP BY T
GROUP BY city, Tumbling(minute, 1)
