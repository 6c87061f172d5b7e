"""Datasets, metainfo, transforms and the synthetic data generator."""
