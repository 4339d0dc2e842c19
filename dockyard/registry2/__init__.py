"""Taking over a registry:2 store in place (``dockyard import``) and handing one back
(``dockyard export``): Distribution's link files read into, and written from, the
metadata database."""
