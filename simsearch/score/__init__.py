"""Score: results (ScoreResult, Neighbour, Box), scoring modes (image, patch), anomaly maps and boxes."""
