-- inputs: toll
SELECT atm, COUNT(*) AS n, System.Timestamp() AS e
FROM Ops TIMESTAMP BY t OVER atm
GROUP BY atm, TumblingWindow(second, 30)
