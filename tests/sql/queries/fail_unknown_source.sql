-- fail: line 4, column 6: 'Inptu' is neither an input nor a WITH step (did you mean 'Input'?)
-- known_inputs: Input
SELECT city
FROM Inptu
