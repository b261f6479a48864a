-- fail: line 2, column 24: IsFirst: the size (argument 2) must be a number, got 'ten'
SELECT ISFIRST(minute, 'ten') OVER (PARTITION BY k) AS f FROM Input
