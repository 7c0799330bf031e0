"""Models: plain predictors (frequency, neighbours) and ``nn.Module`` networks (``glc.models.components``)."""
