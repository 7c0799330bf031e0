"""The fusion experiment shrunk to CPU-test size, shared by the GPU-runner tests."""

#: tasks/fusion.toml shrunk to CPU-test size (one fold, one epoch, small widths, no workers, float32).
SMALL: list[str] = [
    "model.backbone=resnet18",
    "model.image_size=32",
    "model.latent=16",
    "model.dim=16",
    "model.heads=4",
    'model.swin={"embed_dim": 24, "depths": [1, 1], "heads": [4, 8]}',
    "model.tabular.hidden=32",
    "model.graph.tokens=3",
    "model.graph.width=8",
    "train.kfold=1",
    "train.max_epochs=1",
    "train.batch_size=32",
    "train.num_workers=0",
    "train.accelerator=cpu",
    "train.precision=32-true",
]
