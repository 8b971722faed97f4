"""For the notebooks: their set-up, plots, and the interactive partition and attention explorers."""
