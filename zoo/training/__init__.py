"""Training runs and fine-tuning."""
