"""Running the board: storage backends, the results store, workers, isolation and seeding."""
