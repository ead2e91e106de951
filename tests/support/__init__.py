"""Test support: tiny random checkpoints, synthetic data sets and fake servers. Not part of the product."""
