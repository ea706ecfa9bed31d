"""atft: train ATFT-GAT-FAN multi-horizon stock-return models, honestly and observably.

The library never imports the CLI, typer or kubernetes: it is what runs inside the training container.
"""

__version__ = "0.1.0"
