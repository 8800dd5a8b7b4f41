"""Applying a trained model: predict, evaluate, explain. Each reads a run folder (config, split, checkpoints)."""
