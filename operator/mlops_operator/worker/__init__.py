"""What runs in Job pods: dataset validation and profiling, model training, and bundled sample data."""
