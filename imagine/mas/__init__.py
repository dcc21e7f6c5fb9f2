"""Stage 2: the multi-agent teacher (Reasoner -> two Judges -> Reflector) and its training traces."""
