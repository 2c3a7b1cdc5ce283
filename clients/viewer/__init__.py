"""The ModernGL viewer: the built-in avatar, headless video renders and the live window."""
