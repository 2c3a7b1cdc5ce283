"""The server and everything it needs to generate: config, audio front-end, rigs, protocol, models."""
