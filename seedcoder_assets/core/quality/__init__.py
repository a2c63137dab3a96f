"""The model curates the data: oracle prompt and rating parser, label sample, quality scorer."""
