"""Studies: they only choose which configs the stage-2 engine runs (ablate, compare), then tabulate."""
