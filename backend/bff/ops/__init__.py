"""Operating the BFF: health, metrics and the AsyncAPI document."""
