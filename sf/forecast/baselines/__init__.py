"""Non-neural baselines, one file each: fit(train Inputs) then predict(Inputs) -> (N, H) units."""
