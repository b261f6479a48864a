-- inputs: trips
SELECT city, CollectTop(2, id) OVER (ORDER BY dist DESC) AS farthest, CollectTop(1) OVER (ORDER BY T) AS firstTrip
FROM Input TIMESTAMP BY T
GROUP BY city, TumblingWindow(minute, 1)
