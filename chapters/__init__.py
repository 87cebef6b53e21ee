"""The book's chapters, one module each, runnable as `python -m chapters.<name>`."""
