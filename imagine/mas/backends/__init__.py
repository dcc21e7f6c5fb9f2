"""Teacher backends: one class per way of reaching a model, all with the same async ``chat``."""
