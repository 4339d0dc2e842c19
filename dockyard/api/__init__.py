"""The aiohttp application: routes, handlers, streaming and error rendering."""
