"""Client library for TF Serving's gRPC API (no Keras import)."""
