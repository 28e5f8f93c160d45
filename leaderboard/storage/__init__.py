"""The ground floor: durable state (backends, typed rows and requests, the results and request stores)."""
