"""Reports over finished runs: the scientific floor and the run page of the book (no training, no notebooks)."""
