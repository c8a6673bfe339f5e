"""Domain logic. Never imports the web framework; raises ``strongroom.errors`` only."""
