"""Lightning training of the neural models: losses, the LightningModule and the fit loop."""
