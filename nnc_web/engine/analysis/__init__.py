"""Post-processing analysis (NNC's Utils, Visualization and Fairness plugins) as pure engine code:
cross tabulation, parameter stats, t-SNE, tile images, face ITA, scatter plots, and the shared CSV and
output-file helpers they read and write through."""
