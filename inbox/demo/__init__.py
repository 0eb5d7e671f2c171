"""`inbox demo`: an organization to click through, and customers who keep writing in."""

from .seed import DEMO_AGENT, DEMO_AGENT_2, DEMO_OWNER, seed_demo

__all__ = ["DEMO_AGENT", "DEMO_AGENT_2", "DEMO_OWNER", "seed_demo"]
