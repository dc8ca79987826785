"""One file per method, readable top to bottom with the paper open.

Each method is an ``nn.Module`` with ``loss(batch) -> (loss, logs)`` so that
:func:`ssl_tutorial.fit` can train it; ``batch`` is ``(images, labels)`` and self-supervised
methods read only the images.
"""
