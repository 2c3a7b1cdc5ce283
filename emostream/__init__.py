"""emostream: live speech to emotional facial animation and body gestures, streamed over WebSockets.

The subpackages are the repository's top-level folders (`runtime`, `engines`, `clients`, `training`,
`benchmarks`), linked here so that the source tree and an installed wheel import them by the same names.
"""
