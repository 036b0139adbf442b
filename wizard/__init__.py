"""EnerLink migration wizard: renames the prosumer table to user, safely."""

__version__ = "0.1.0"
