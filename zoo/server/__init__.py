"""An embedded server speaking TF Serving's gRPC API over the zoo."""
