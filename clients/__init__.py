"""Client-side code: protocol client, audio sources, viewer, engine bridges, exporters. Never imports torch."""
