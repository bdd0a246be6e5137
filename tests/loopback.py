"""Spellings of the loopback address that the default address rule must refuse.

Shared by the fetch, webhook and REST tests, so every URL kind is checked against the
same list.
"""

from __future__ import annotations

LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "2130706433",
    "0x7f.1",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[2002:7f00:1::]",
    "0.0.0.0",
    "0",
    "127\u30020\u30020\u30021",  # ideographic full stops, which IDNA maps to dots
    "\uff11\uff12\uff17.0.0.1",  # full-width digits
    "LOCALHOST",
]
