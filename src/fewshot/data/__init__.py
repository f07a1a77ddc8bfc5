"""Data, whatever its kind: sources (raw files -> manifest), curation and its expectations,
episodes, cached features and class texts. What an item *is* lives in `fewshot.modalities`."""
