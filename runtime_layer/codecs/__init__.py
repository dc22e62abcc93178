"""Wire protocols: request bytes to numpy feeds, model outputs to response bytes."""
