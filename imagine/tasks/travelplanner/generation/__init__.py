"""Stage 1: new queries with reference information, and the feasibility solver (`imagine queries gen`)."""
