"""Neural forecasters, one file each; importing this package registers them all (see sf.forecast.base)."""
