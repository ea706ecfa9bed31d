"""ATFT-GAT-FAN: variable selection -> temporal fusion encoder -> graph attention -> adaptive norm -> quantile heads."""

from atft.model.atft import ATFT, ATFTOutput

__all__ = ["ATFT", "ATFTOutput"]
