"""Commands around the pipeline: experiments (presets, sweeps), the example, demo data."""
