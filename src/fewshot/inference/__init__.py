"""Using a trained model: the self-contained artefact, support sets, fewshot-predict, serving."""
