"""The flyctl test double's implementation (stdlib only); see ../README.md."""
