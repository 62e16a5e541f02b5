"""Command-line front ends (also installed as `tfbert-train`, `tfbert-evaluate`, ...)."""
