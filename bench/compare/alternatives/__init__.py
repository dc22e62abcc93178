"""Server programs of the alternatives; each runs inside its own venv and imports only its own framework."""
