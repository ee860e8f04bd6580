"""AAM Workflow: microbiome tables and DNA sequences to trained, evaluated deep-learning models."""

__version__ = "0.1.0"
