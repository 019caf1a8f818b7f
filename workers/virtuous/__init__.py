"""The Virtuous API client, its answers and its rate-limit headers."""
