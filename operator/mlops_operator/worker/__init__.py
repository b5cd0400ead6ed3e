"""What runs in Job pods: dataset validation and model training."""
