"""Renderers over records: markdown, CSV and plots. They read records and nothing else."""
