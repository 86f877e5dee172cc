"""RQ executor for schedcore (issue 4)."""
