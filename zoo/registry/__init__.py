"""The model zoo: versions, cards, SavedModel export and TF Serving config."""
