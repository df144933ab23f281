"""drgn"""

from __future__ import annotations
