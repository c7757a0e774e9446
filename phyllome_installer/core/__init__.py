"""The ground floor: imports nothing else of the project, and no UI."""
