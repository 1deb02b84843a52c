"""Data: sources, procedural shapes, samplers, noise models, splits and the on-disk dataset layout."""

from sbdbench.data.dataset import Dataset, open_dataset, list_datasets, sigma_label

__all__ = ["Dataset", "open_dataset", "list_datasets", "sigma_label"]
