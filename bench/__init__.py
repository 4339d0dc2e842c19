"""Side-by-side benchmark of Dockyard and registry:2 (`make bench`); see bench/README.md."""
