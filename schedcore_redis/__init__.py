"""Redis store for schedcore (issue 3)."""
