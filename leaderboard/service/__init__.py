"""Running the board: validation, limits, submissions, evaluations, equivalence, the worker and seeding."""
