"""The official splits in, a leaderboard submission out (`imagine predict`)."""
